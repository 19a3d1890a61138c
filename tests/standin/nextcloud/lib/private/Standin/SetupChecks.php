<?php
declare(strict_types=1);

namespace Standin;

/**
 * The admin overview's setup checks (`occ setupchecks`, Administration >
 * Overview) that concern what a deployment sets up, reported from the
 * stand-in's own state with Nextcloud 32's class names, categories, names,
 * severities and texts (apps/settings/lib/SetupChecks/*.php, the theming and
 * AppAPI apps' SetupChecks). A result is what SetupResult::jsonSerialize()
 * gives: name, severity, description, descriptionParameters, linkToDoc.
 *
 * Not modelled: the checks that need a web request to the instance itself or
 * other PHP settings. InternetConnectivity never connects anywhere: the
 * stand-in reports what a real Nextcloud reports where nothing outside is
 * reachable (the lab), unless has_internet_connection is false.
 */
final class SetupChecks {
	public const SUCCESS = 'success';
	public const INFO = 'info';
	public const WARNING = 'warning';
	public const ERROR = 'error';

	/** Optional filecache indices a fresh install lacks until `occ db:add-missing-indices` ran, by major version. */
	public static function optionalIndices(int $major): array {
		$indices = ['fs_mtime' => ['storage', 'mtime'], 'fs_size' => ['size']];
		if ($major >= 33) {
			// a release that brings a new optional index: the warning comes back after the upgrade
			$indices['fs_storage_size'] = ['storage', 'size'];
		}
		return $indices;
	}

	/** The mimetype migrations of this release are recorded as done (appconfig files/mimetype_version). */
	public static function mimetypeMigrationsAvailable(Server $server): bool {
		$done = (string)$server->db()->getAppValue('files', 'mimetype_version', '');
		return $done === '' || (int)explode('.', $done)[0] < $server->version[0];
	}

	public function __construct(private Server $server) {
	}

	/** @return array<string, array{0: string, 1: string, 2: callable(): array}> class => [category, name, run] */
	private function checks(): array {
		$checks = [
			'OCA\\Settings\\SetupChecks\\DatabaseHasMissingColumns' => ['database', 'Database missing columns', fn () => $this->success('None')],
			'OCA\\Settings\\SetupChecks\\DatabaseHasMissingIndices' => ['database', 'Database missing indices', fn () => $this->missingIndices()],
			'OCA\\Settings\\SetupChecks\\DatabaseHasMissingPrimaryKeys' => ['database', 'Database missing primary keys', fn () => $this->success('None')],
			'OCA\\Settings\\SetupChecks\\DefaultPhoneRegionSet' => ['config', 'Checking for default phone region', fn () => $this->phoneRegion()],
			'OCA\\Settings\\SetupChecks\\EmailTestSuccessful' => ['config', 'Email test', fn () => $this->email()],
			'OCA\\Settings\\SetupChecks\\InternetConnectivity' => ['network', 'Internet connectivity', fn () => $this->internet()],
			'OCA\\Settings\\SetupChecks\\MaintenanceWindowStart' => ['system', 'Maintenance window start', fn () => $this->maintenanceWindow()],
			'OCA\\Settings\\SetupChecks\\MimeTypeMigrationAvailable' => ['system', 'Mimetype migrations available', fn () => $this->mimetypes()],
			// registered by the theming app, which a real release always has enabled
			'OCA\\Theming\\SetupChecks\\PhpImagickModule' => ['php', 'PHP Imagick module', fn () => $this->imagick()],
		];
		if ($this->server->apps()->isEnabled('app_api')) {
			// registered by the AppAPI app: only there while it is enabled
			$checks['OCA\\AppAPI\\SetupChecks\\DaemonCheck'] = ['system', 'AppAPI deploy daemon', fn () => $this->appApiDaemon()];
		}
		return $checks;
	}

	/**
	 * Like SetupCheckManager: 'all', a category, or one class (more than one backslash).
	 *
	 * @return array<string, array<string, array{name: string, severity: string, description: ?string, descriptionParameters: null, linkToDoc: ?string}>>
	 */
	public function run(): array {
		$results = [];
		foreach ($this->checks() as $class => [$category, $name, $run]) {
			try {
				$result = $run();
			} catch (\Throwable $t) {
				$result = $this->result(self::ERROR, "An exception occured while running the setup check:\n" . $t);
			}
			$results[$category][$class] = ['name' => $name] + $result;
		}
		return $results;
	}

	private function result(string $severity, ?string $description = null, ?string $link = null): array {
		return ['severity' => $severity, 'description' => $description, 'descriptionParameters' => null, 'linkToDoc' => $link];
	}

	private function success(?string $description = null): array {
		return $this->result(self::SUCCESS, $description);
	}

	private function missingIndices(): array {
		$db = $this->server->db();
		$missing = [];
		foreach (array_keys(self::optionalIndices($this->server->version[0])) as $index) {
			if (!$db->hasIndex('filecache', $index)) {
				$missing[] = $index;
			}
		}
		if ($missing === []) {
			return $this->success('None');
		}
		$list = 'Missing indices:';
		foreach ($missing as $i => $index) {
			$list .= "\n " . sprintf('"%s" in table "%s"', $index, 'filecache') . ($i < count($missing) - 1 ? ', ' : '');
		}
		return $this->result(self::WARNING,
			'Detected some missing optional indices. Occasionally new indices are added (by Nextcloud or installed applications) to improve database performance. Adding indices can sometimes take awhile and temporarily hurt performance so this is not done automatically during upgrades. Once the indices are added, queries to those tables should be faster. Use the command `occ db:add-missing-indices` to add them. ' . $list . '.',
			$this->server->docs('admin-long-running-migration-steps'));
	}

	private function phoneRegion(): array {
		$region = (string)$this->server->config->getValue('default_phone_region', '');
		if ($region !== '') {
			return $this->success($region);
		}
		return $this->result(self::INFO,
			'Your installation has no default phone region set. This is required to validate phone numbers in the profile settings without a country code. To allow numbers without a country code, please add "default_phone_region" with the respective ISO 3166-1 code of the region to your config file.',
			'https://en.wikipedia.org/wiki/ISO_3166-1_alpha-2#Officially_assigned_code_elements');
	}

	private function email(): array {
		$config = $this->server->config;
		if ((string)$config->getValue('mail_smtpmode', 'smtp') === 'null') {
			return $this->success('Mail delivery is disabled by instance config "mail_smtpmode".');
		}
		$tested = (string)$this->server->db()->getAppValue('core', 'emailTestSuccessful', '');
		$ok = !(($tested === '' && (string)$config->getValue('mail_domain', '') === '') || $tested === '0');
		if ($ok) {
			return $this->success('Email test was successfully sent');
		}
		return $this->result(self::INFO,
			'You have not set or verified your email server configuration, yet. Please head over to the "Basic settings" in order to set them. Afterwards, use the "Send email" button below the form to verify your settings.',
			$this->server->docs('admin-email'));
	}

	private function internet(): array {
		if ($this->server->config->getValue('has_internet_connection', true) === false) {
			return $this->success('Internet connectivity is disabled in configuration file.');
		}
		return $this->result(self::WARNING,
			'This server has no working internet connection: Multiple endpoints could not be reached. This means that some of the features like mounting external storage, notifications about updates or installation of third-party apps will not work. Accessing files remotely and sending of notification emails might not work, either. Establish a connection from this server to the internet to enjoy all features.');
	}

	private function maintenanceWindow(): array {
		$value = $this->server->config->getValue('maintenance_window_start');
		if ($value === null) {
			return $this->result(self::WARNING,
				'Server has no maintenance window start time configured. This means resource intensive daily background jobs will also be executed during your main usage time. We recommend to set it to a time of low usage, so users are less impacted by the load caused from these heavy tasks.',
				$this->server->docs('admin-background-jobs'));
		}
		$start = (int)$value;
		return $this->success(sprintf('Maintenance window to execute heavy background jobs is between %d:00 UTC and %d:00 UTC', $start, ($start + 4) % 24));
	}

	private function mimetypes(): array {
		if (self::mimetypeMigrationsAvailable($this->server)) {
			return $this->result(self::WARNING,
				'One or more mimetype migrations are available. Occasionally new mimetypes are added to better handle certain file types. Migrating the mimetypes take a long time on larger instances so this is not done automatically during upgrades. Use the command `occ maintenance:repair --include-expensive` to perform the migrations.');
		}
		return $this->success('None');
	}

	private function imagick(): array {
		if (!extension_loaded('imagick')) {
			return $this->result(self::INFO,
				'The PHP module "imagick" is not enabled although the theming app is. For favicon generation to work correctly, you need to install and enable this module.',
				$this->server->docs('admin-php-modules'));
		}
		if (count(\Imagick::queryFormats('SVG')) === 0) {
			return $this->result(self::INFO,
				'The PHP module "imagick" in this instance has no SVG support. For better compatibility it is recommended to install it.',
				$this->server->docs('admin-php-modules'));
		}
		return $this->success();
	}

	private function appApiDaemon(): array {
		$major = $this->server->version[0];
		$link = "https://docs.nextcloud.com/server/$major/admin_manual/exapps_management/AppAPIAndExternalApps.html#setup-deploy-daemon";
		$daemon = (string)$this->server->db()->getAppValue('app_api', 'default_daemon_config', '');
		if ($daemon === '') {
			return $this->result(self::ERROR,
				'AppAPI default deploy daemon is not set. Please register a default deploy daemon in the settings to install External Apps (Ex-Apps).', $link);
		}
		// the stand-in has no daemon to ping
		return $this->result(self::ERROR,
			sprintf('AppAPI default deploy daemon "%s" is not accessible. Please check the daemon configuration.', $daemon), $link);
	}
}
