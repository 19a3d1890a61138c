<?php
declare(strict_types=1);

namespace Standin\Console;

/** stdout/stderr writer that drops Symfony's default style tags (output is never coloured). */
final class Output {
	public const QUIET = 16;
	public const NORMAL = 32;
	public const VERBOSE = 64;

	public int $verbosity = self::NORMAL;

	public static function format(string $text): string {
		$text = preg_replace('#</?(info|error|comment|question)>|</>#', '', $text) ?? $text;
		return str_replace('\\<', '<', $text);
	}

	public function writeln(string $text = ''): void {
		$this->write($text . "\n");
	}

	public function write(string $text): void {
		if ($this->verbosity > self::QUIET) {
			fwrite(STDOUT, self::format($text));
		}
	}

	public function err(string $text, bool $evenIfQuiet = false): void {
		if ($evenIfQuiet || $this->verbosity > self::QUIET) {
			fwrite(STDERR, self::format($text) . "\n");
		}
	}
}
