<?php
declare(strict_types=1);

namespace Standin\Console;

/** An option of a command, with Symfony Console's modes. */
final class Opt {
	public const NONE = 1;
	public const REQUIRED = 2;
	public const OPTIONAL = 4;
	public const IS_ARRAY = 8;

	public mixed $default;

	public function __construct(public string $name, public ?string $shortcut, public int $mode, public string $description = '', mixed $default = null) {
		$this->default = ($mode & self::NONE) ? false : (($mode & self::IS_ARRAY) ? ($default ?? []) : $default);
	}

	public function acceptsValue(): bool {
		return !($this->mode & self::NONE);
	}
}

/** A positional argument of a command. */
final class Arg {
	public const REQUIRED = 1;
	public const OPTIONAL = 2;
	public const IS_ARRAY = 4;

	public function __construct(public string $name, public int $mode, public string $description = '', public mixed $default = null) {
		if ($mode & self::IS_ARRAY) {
			$this->default ??= [];
		}
	}
}

/** A usage error, reported like Symfony Console reports its own errors (no file/line). */
final class InputError extends \RuntimeException {
}

/**
 * Command line tokens parsed the way Symfony's ArgvInput parses them:
 * --name=value, --name value, -x, -xvalue, grouped short flags, "--" ends
 * options; options may come before or after arguments.
 */
final class Input {
	/** @var array<string, mixed> */
	private array $options = [];
	/** @var array<string, mixed> */
	private array $arguments = [];
	/** @var array<string, Opt> */
	private array $optDefs = [];
	/** @var list<Arg> */
	private array $argDefs = [];

	/** @param list<string> $tokens the command line without the script name */
	public function __construct(private array $tokens) {
	}

	/** The command name: the first token that is not an option. */
	public static function firstArgument(array $tokens): ?string {
		foreach ($tokens as $token) {
			if ($token === '--') {
				return null;
			}
			if ($token !== '' && $token[0] === '-') {
				continue;
			}
			return $token;
		}
		return null;
	}

	/** Raw check, like Symfony's hasParameterOption(): was --name (or --name=...) given? */
	public function hasParameterOption(string $name): bool {
		foreach ($this->tokens as $token) {
			if ($token === '--') {
				return false;
			}
			if ($token === $name || str_starts_with($token, $name . '=')) {
				return true;
			}
		}
		return false;
	}

	/**
	 * @param list<Arg> $args including the leading 'command' argument
	 * @param list<Opt> $opts
	 */
	public function bind(array $args, array $opts): void {
		$this->argDefs = $args;
		$this->optDefs = [];
		foreach ($opts as $opt) {
			$this->optDefs[$opt->name] = $opt;
		}
		$this->options = [];
		$this->arguments = [];
		$parsed = $this->tokens;
		$onlyArguments = false;
		while (($token = array_shift($parsed)) !== null) {
			if ($onlyArguments) {
				$this->addArgument($token);
			} elseif ($token === '--') {
				$onlyArguments = true;
			} elseif (str_starts_with($token, '--')) {
				$this->parseLong(substr($token, 2), $parsed);
			} elseif ($token !== '-' && $token !== '' && $token[0] === '-') {
				$this->parseShort(substr($token, 1), $parsed);
			} else {
				$this->addArgument($token);
			}
		}
		$missing = [];
		foreach ($this->argDefs as $arg) {
			if (($arg->mode & Arg::REQUIRED) && !array_key_exists($arg->name, $this->arguments)) {
				$missing[] = $arg->name;
			}
		}
		if ($missing !== []) {
			throw new InputError(sprintf('Not enough arguments (missing: "%s").', implode(', ', $missing)));
		}
	}

	private function parseLong(string $token, array &$parsed): void {
		$value = null;
		if (str_contains($token, '=')) {
			[$token, $value] = explode('=', $token, 2);
		}
		if (!isset($this->optDefs[$token])) {
			throw new InputError(sprintf('The "--%s" option does not exist.', $token));
		}
		$this->addOption($this->optDefs[$token], $value, $parsed);
	}

	private function shortcut(string $char): ?Opt {
		foreach ($this->optDefs as $opt) {
			if ($opt->shortcut !== null && in_array($char, explode('|', $opt->shortcut), true)) {
				return $opt;
			}
		}
		return null;
	}

	private function parseShort(string $token, array &$parsed): void {
		$length = strlen($token);
		for ($i = 0; $i < $length; $i++) {
			$opt = $this->shortcut($token[$i]);
			if ($opt === null) {
				throw new InputError(sprintf('The "-%s" option does not exist.', $token[$i]));
			}
			if ($opt->acceptsValue()) {
				$this->addOption($opt, $i === $length - 1 ? null : substr($token, $i + 1), $parsed);
				return;
			}
			$this->addOption($opt, null, $parsed);
		}
	}

	private function addOption(Opt $opt, ?string $value, array &$parsed): void {
		if ($value !== null && !$opt->acceptsValue()) {
			throw new InputError(sprintf('The "--%s" option does not accept a value.', $opt->name));
		}
		if ($value === null && $opt->acceptsValue() && $parsed !== []) {
			$next = array_shift($parsed);
			if ($next === '' || $next[0] !== '-') {
				$value = $next;
			} else {
				array_unshift($parsed, $next);
			}
		}
		if ($value === null) {
			if ($opt->mode & Opt::REQUIRED) {
				throw new InputError(sprintf('The "--%s" option requires a value.', $opt->name));
			}
			if (!($opt->mode & Opt::IS_ARRAY) && !($opt->mode & Opt::OPTIONAL)) {
				$value = true;
			}
		}
		if ($opt->mode & Opt::IS_ARRAY) {
			$this->options[$opt->name][] = $value;
		} else {
			$this->options[$opt->name] = $value;
		}
	}

	private function addArgument(string $token): void {
		$count = count($this->arguments);
		$def = $this->argDefs[$count] ?? null;
		$last = end($this->argDefs) ?: null;
		if ($def !== null) {
			$this->arguments[$def->name] = ($def->mode & Arg::IS_ARRAY) ? [$token] : $token;
		} elseif ($last !== null && ($last->mode & Arg::IS_ARRAY)) {
			$this->arguments[$last->name][] = $token;
		} else {
			$command = $this->arguments['command'] ?? null;
			$expected = array_values(array_filter(array_map(fn (Arg $a) => $a->name, $this->argDefs), fn ($n) => $n !== 'command'));
			if ($expected !== []) {
				$message = $command !== null
					? sprintf('Too many arguments to "%s" command, expected arguments "%s".', $command, implode('" "', $expected))
					: sprintf('Too many arguments, expected arguments "%s".', implode('" "', $expected));
			} else {
				$message = $command !== null
					? sprintf('No arguments expected for "%s" command, got "%s".', $command, $token)
					: sprintf('No arguments expected, got "%s".', $token);
			}
			throw new InputError($message);
		}
	}

	public function getOption(string $name): mixed {
		if (array_key_exists($name, $this->options)) {
			return $this->options[$name];
		}
		return isset($this->optDefs[$name]) ? $this->optDefs[$name]->default : null;
	}

	public function getArgument(string $name): mixed {
		if (array_key_exists($name, $this->arguments)) {
			return $this->arguments[$name];
		}
		foreach ($this->argDefs as $arg) {
			if ($arg->name === $name) {
				return $arg->default;
			}
		}
		return null;
	}
}
