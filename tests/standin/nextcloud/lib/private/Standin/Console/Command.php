<?php
declare(strict_types=1);

namespace Standin\Console;

use Standin\Server;

/** Base of the occ commands: definition, synopsis and Nextcloud's output formats. */
abstract class Command {
	public string $name = '';
	/** @var list<string> */
	public array $aliases = [];
	public string $description = '';
	/** @var list<Arg> */
	public array $args = [];
	/** @var list<Opt> */
	public array $opts = [];
	/** Name the command was called by (for aliases). */
	public string $calledAs = '';

	public function __construct(protected Server $server) {
		$this->configure();
	}

	abstract protected function configure(): void;

	abstract public function execute(Input $in, Output $out): int;

	protected function arg(string $name, int $mode, string $description = '', mixed $default = null): static {
		$this->args[] = new Arg($name, $mode, $description, $default);
		return $this;
	}

	protected function opt(string $name, ?string $shortcut, int $mode, string $description = '', mixed $default = null): static {
		$this->opts[] = new Opt($name, $shortcut, $mode, $description, $default);
		return $this;
	}

	/** Nextcloud's --output option (plain, json or json_pretty). */
	protected function outputOption(): static {
		return $this->opt('output', null, Opt::OPTIONAL, 'Output format (plain, json or json_pretty, default is plain)', 'plain');
	}

	public function synopsis(): string {
		$parts = [$this->name];
		foreach ($this->opts as $opt) {
			$value = '';
			if ($opt->acceptsValue()) {
				$optional = (bool)($opt->mode & Opt::OPTIONAL);
				$value = ' ' . ($optional ? '[' : '') . strtoupper($opt->name) . ($optional ? ']' : '');
			}
			$shortcut = $opt->shortcut !== null ? '-' . $opt->shortcut . '|' : '';
			$parts[] = '[' . $shortcut . '--' . $opt->name . $value . ']';
		}
		if ($this->opts !== [] && $this->args !== []) {
			$parts[] = '[--]';
		}
		foreach ($this->args as $arg) {
			$element = '<' . $arg->name . '>' . (($arg->mode & Arg::IS_ARRAY) ? '...' : '');
			$parts[] = ($arg->mode & Arg::REQUIRED) ? $element : '[' . $element . ']';
		}
		return implode(' ', $parts);
	}

	protected static function valueToString(mixed $value, bool $returnNull = true): ?string {
		return match (true) {
			$value === false => 'false',
			$value === true => 'true',
			$value === null => $returnNull ? null : 'null',
			default => (string)$value,
		};
	}

	protected function writeArray(Input $in, Output $out, iterable $items, string $prefix = '  - '): void {
		$format = $in->getOption('output');
		if ($format === 'json' || $format === 'json_pretty') {
			$out->writeln(json_encode($items, $format === 'json_pretty' ? JSON_PRETTY_PRINT : 0));
			return;
		}
		foreach ($items as $key => $item) {
			if (is_iterable($item)) {
				$out->writeln($prefix . $key . ':');
				$this->writeArray($in, $out, $item, '  ' . $prefix);
				continue;
			}
			if (!is_int($key)) {
				$value = self::valueToString($item);
				$out->writeln($value !== null ? $prefix . $key . ': ' . $value : $prefix . $key);
			} else {
				$out->writeln($prefix . self::valueToString($item));
			}
		}
	}

	protected function writeMixed(Input $in, Output $out, mixed $item): void {
		if (is_array($item)) {
			$this->writeArray($in, $out, $item, '');
			return;
		}
		$format = $in->getOption('output');
		if ($format === 'json' || $format === 'json_pretty') {
			$out->writeln(json_encode($item, $format === 'json_pretty' ? JSON_PRETTY_PRINT : 0));
		} else {
			$out->writeln((string)self::valueToString($item, false));
		}
	}
}
