<?php
declare(strict_types=1);

namespace OCP;

/**
 * An exception that carries a hint for the administrator. Printed the way
 * Nextcloud prints it (class, code, message and hint on one line).
 */
class HintException extends \Exception {
	public function __construct(string $message, private string $hint = '', int $code = 0, ?\Throwable $previous = null) {
		parent::__construct($message, $code, $previous);
	}

	public function getHint(): string {
		return $this->hint === '' ? $this->getMessage() : $this->hint;
	}

	public function __toString(): string {
		return self::class . ': [' . $this->getCode() . ']: ' . $this->getMessage() . ' (' . $this->hint . ")\n";
	}
}
