<?php
declare(strict_types=1);

namespace Standin\Console;

use Standin\Server;

/**
 * The occ application: which commands exist (depends on installed state, as
 * in Nextcloud), the global options, the notices on stderr, the server
 * checks, command lookup and Symfony-style error rendering.
 */
final class Application {
	/** @var array<string, Command> */
	private array $commands = [];
	private Output $out;

	public function __construct(private Server $server) {
		$this->out = new Output();
	}

	/** @return list<Opt> */
	private static function globalOptions(): array {
		return [
			new Opt('help', 'h', Opt::NONE, 'Display help for the given command. When no command is given display help for the list command'),
			new Opt('quiet', 'q', Opt::NONE, 'Do not output any message'),
			new Opt('verbose', 'v|vv|vvv', Opt::NONE, 'Increase the verbosity of messages: 1 for normal output, 2 for more verbose output and 3 for debug'),
			new Opt('version', 'V', Opt::NONE, 'Display this application version'),
			new Opt('ansi', null, Opt::NONE, 'Force (or disable --no-ansi) ANSI output'),
			new Opt('no-ansi', null, Opt::NONE, 'Disable ANSI output'),
			new Opt('no-interaction', 'n', Opt::NONE, 'Do not ask any interactive question'),
			new Opt('no-warnings', null, Opt::NONE, 'Skip global warnings, show command output only'),
		];
	}

	private function register(): void {
		$classes = [StatusCommand::class, CheckCommand::class];
		if ($this->server->installed()) {
			array_push($classes,
				AppDisableCommand::class, AppEnableCommand::class, AppListCommand::class,
				TwoFactorEnforceCommand::class, BackgroundModeCommand::class,
				SystemDeleteCommand::class, SystemGetCommand::class, SystemSetCommand::class, AppGetCommand::class,
				AppSetCommand::class,
				AuthTokenAddCommand::class,
				AddMissingColumnsCommand::class, AddMissingIndicesCommand::class, AddMissingPrimaryKeysCommand::class,
				DataFingerprintCommand::class, MaintenanceModeCommand::class, RepairCommand::class, SetupChecksCommand::class,
				UpgradeCommand::class);
		} else {
			$classes[] = InstallCommand::class;
		}
		foreach ($classes as $class) {
			$command = new $class($this->server);
			$this->commands[$command->name] = $command;
		}
		ksort($this->commands);
	}

	/** @param list<string> $argv */
	public function run(array $argv): int {
		$tokens = array_slice($argv, 1);
		$name = Input::firstArgument($tokens);
		$has = fn (string ...$flags) => array_intersect($flags, $tokens) !== [];
		if ($has('-q', '--quiet')) {
			$this->out->verbosity = Output::QUIET;
		} elseif ($has('-v', '-vv', '-vvv', '--verbose')) {
			$this->out->verbosity = Output::VERBOSE;
		}
		$warnings = !$has('--no-warnings') && !$has('-q', '--quiet');

		$memoryLimit = self::bytes((string)ini_get('memory_limit'));
		if ($warnings && $memoryLimit !== -1 && $memoryLimit < 512 * 1024 * 1024) {
			$this->out->err('The current PHP memory limit is below the recommended value of 512MB.');
		}
		$this->register();
		if ($warnings) {
			if (!$this->server->installed()) {
				if ($name !== '_completion' && $name !== 'maintenance:install') {
					$this->out->err('Nextcloud is not installed - only a limited number of commands are available');
				}
			} elseif ($this->server->needUpgrade()) {
				if ($name !== '_completion' && $name !== 'upgrade') {
					$this->out->err('Nextcloud or one of the apps require upgrade - only a limited number of commands are available');
					$this->out->err('You may use your browser or the occ upgrade command to do the upgrade');
				}
			} elseif ($this->server->maintenance() && !in_array($name, ['_completion', 'maintenance:mode', 'status'], true)) {
				$this->out->err('Nextcloud is in maintenance mode, no apps are loaded.');
				$this->out->err('Commands provided by apps are unavailable.');
			}
		}
		if ($name !== 'check') {
			$errors = $this->server->serverErrors();
			if ($errors !== []) {
				foreach ($errors as $error) {
					$this->out->writeln($error['error']);
					$this->out->writeln($error['hint']);
					$this->out->writeln('');
				}
				throw new \Exception('Environment not properly prepared.');
			}
		}

		if ($has('-V', '--version')) {
			$this->out->writeln(Server::PRODUCT . ' <info>' . $this->server->versionString . '</info>');
			return 0;
		}
		if ($name === null || $name === 'list') {
			return $this->listCommands();
		}
		if ($name === 'help') {
			$target = Input::firstArgument(array_slice($tokens, (int)array_search('help', $tokens, true) + 1)) ?? 'help';
			return $target === 'help' ? $this->listCommands() : $this->help($target);
		}

		$command = null;
		try {
			$command = $this->find($name);
			if ($has('-h', '--help')) {
				return $this->help($command->name);
			}
			$command->calledAs = $name;
			$input = new Input($tokens);
			$input->bind(
				array_merge([new Arg('command', Arg::REQUIRED)], $command->args),
				array_merge(self::globalOptions(), $command->opts)
			);
			return $command->execute($input, $this->out);
		} catch (\Exception $e) {
			$this->render($e, $command);
			$code = $e->getCode();
			return is_int($code) && $code > 0 ? min($code, 255) : 1;
		}
	}

	/** php.ini sizes ("512M", "-1") in bytes, as Nextcloud's IniGetWrapper::getBytes (occ and serverinfo). */
	public static function bytes(string $value): int {
		$value = trim($value);
		if ($value === '' || $value === '-1') {
			return -1;
		}
		$number = (int)$value;
		return match (strtolower(substr($value, -1))) {
			'g' => $number * 1024 ** 3,
			'm' => $number * 1024 ** 2,
			'k' => $number * 1024,
			default => $number,
		};
	}

	/** Exact name, alias, or an unambiguous abbreviation per ':'-separated part. */
	private function find(string $name): Command {
		if (isset($this->commands[$name])) {
			return $this->commands[$name];
		}
		foreach ($this->commands as $command) {
			if (in_array($name, $command->aliases, true)) {
				return $command;
			}
		}
		$parts = explode(':', $name);
		$regex = '/^' . implode(':', array_map(fn ($p) => preg_quote($p, '/') . '[^:]*', $parts)) . '$/i';
		$matches = array_values(array_filter(array_keys($this->commands), fn ($c) => preg_match($regex, $c) === 1));
		if (count($matches) === 1) {
			return $this->commands[$matches[0]];
		}
		if (count($matches) > 1) {
			throw new InputError(sprintf("Command \"%s\" is ambiguous.\nDid you mean one of these?\n    %s", $name, implode("\n    ", $matches)));
		}

		$namespaces = array_unique(array_map(fn ($c) => explode(':', $c)[0], array_filter(array_keys($this->commands), fn ($c) => str_contains($c, ':'))));
		if (count($parts) > 1 && !in_array($parts[0], $namespaces, true)) {
			$message = sprintf('There are no commands defined in the "%s" namespace.', $parts[0]);
			$alternatives = array_values(array_filter($namespaces, fn ($n) => levenshtein($parts[0], $n) <= strlen($parts[0]) / 3 || str_contains($n, $parts[0])));
		} else {
			$message = sprintf('Command "%s" is not defined.', $name);
			$alternatives = array_values(array_filter(array_keys($this->commands), function (string $c) use ($name, $parts) {
				$cParts = explode(':', $c);
				return (count($parts) > 1 && $cParts[0] === $parts[0])
					|| levenshtein($name, $c) <= strlen($name) / 3
					|| str_contains($c, end($parts));
			}));
		}
		if ($alternatives !== []) {
			sort($alternatives);
			$message .= "\n\nDid you mean " . (count($alternatives) === 1 ? 'this' : 'one of these') . "?\n    " . implode("\n    ", $alternatives);
		}
		throw new InputError($message);
	}

	/** Error block on stderr, like Symfony Console's renderThrowable(). */
	private function render(\Exception $e, ?Command $command): void {
		$lines = preg_split('/\r?\n/', trim($e->getMessage())) ?: [];
		$width = 0;
		foreach ($lines as $line) {
			$width = max($width, mb_strlen($line) + 4);
		}
		$blocks = [''];
		if (!$e instanceof InputError) {
			$blocks[] = sprintf('In %s line %s:', basename($e->getFile()), $e->getLine());
		}
		$blocks[] = str_repeat(' ', $width);
		foreach ($lines as $line) {
			$blocks[] = '  ' . $line . str_repeat(' ', $width - mb_strlen($line) - 2);
		}
		$blocks[] = str_repeat(' ', $width);
		$blocks[] = '';
		if ($command !== null) {
			$blocks[] = $command->synopsis();
			$blocks[] = '';
		}
		foreach ($blocks as $line) {
			$this->out->err($line, true);
		}
	}

	private function listCommands(): int {
		$o = $this->out;
		$o->writeln(Server::PRODUCT . ' <info>' . $this->server->versionString . '</info>');
		$o->writeln('');
		$o->writeln('<comment>Usage:</comment>');
		$o->writeln('  command [options] [arguments]');
		$o->writeln('');
		$o->writeln('<comment>Options:</comment>');
		foreach (self::globalOptions() as $opt) {
			$flag = ($opt->shortcut !== null ? '-' . $opt->shortcut . ', ' : '    ') . '--' . $opt->name;
			$o->writeln('  ' . str_pad($flag, 28) . $opt->description);
		}
		$o->writeln('');
		$o->writeln('<comment>Available commands:</comment>');
		$all = ['help' => 'Display help for a command', 'list' => 'List commands'];
		foreach ($this->commands as $command) {
			$all[$command->name] = $command->description;
		}
		ksort($all);
		$namespace = '';
		foreach ($all as $name => $description) {
			$ns = str_contains($name, ':') ? explode(':', $name)[0] : '';
			if ($ns !== $namespace && $ns !== '') {
				$o->writeln(' <comment>' . $ns . '</comment>');
			}
			$namespace = $ns;
			$o->writeln('  <info>' . str_pad($name, 30) . '</info>' . $description);
		}
		return 0;
	}

	private function help(string $name): int {
		try {
			$command = $this->find($name);
		} catch (InputError $e) {
			$this->render($e, null);
			return 1;
		}
		$o = $this->out;
		$o->writeln('<comment>Description:</comment>');
		$o->writeln('  ' . $command->description);
		$o->writeln('');
		$o->writeln('<comment>Usage:</comment>');
		$o->writeln('  ' . $command->synopsis());
		foreach ($command->aliases as $alias) {
			$o->writeln('  ' . $alias);
		}
		if ($command->args !== []) {
			$o->writeln('');
			$o->writeln('<comment>Arguments:</comment>');
			foreach ($command->args as $arg) {
				$o->writeln('  ' . str_pad($arg->name, 28) . $arg->description);
			}
		}
		$o->writeln('');
		$o->writeln('<comment>Options:</comment>');
		foreach (array_merge($command->opts, self::globalOptions()) as $opt) {
			$flag = ($opt->shortcut !== null ? '-' . $opt->shortcut . ', ' : '    ') . '--' . $opt->name . ($opt->acceptsValue() ? '=' . strtoupper($opt->name) : '');
			$default = ($opt->acceptsValue() && $opt->default !== null && $opt->default !== []) ? ' [default: ' . json_encode($opt->default, JSON_UNESCAPED_SLASHES) . ']' : '';
			$o->writeln('  ' . str_pad($flag, 40) . $opt->description . $default);
		}
		return 0;
	}
}
