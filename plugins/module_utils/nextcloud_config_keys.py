# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Names of Nextcloud system configuration keys (top-level keys of config.php).

Generated once from Nextcloud 32.0.2:

* ``SAMPLE_CONFIG_KEYS``: every top-level key of ``config/config.sample.php``,
  including the keys documented there only inside comments.
* ``OTHER_CONFIG_KEYS``: keys the shipped server code and apps read with
  ``getSystemValue*()`` (or that Nextcloud writes itself, such as
  ``twofactor_enforced``) but that the sample file does not document.

Only the key names are kept here. The lists are used to warn about probable
typos, so being slightly out of date is harmless.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

SAMPLE_CONFIG_KEYS = frozenset((
    'account_manager.default_property_scope', 'allow_local_remote_servers',
    'allow_user_to_change_display_name', 'allowed_admin_ranges', 'appcodechecker', 'apps_paths',
    'appsallowlist', 'appstoreenabled', 'appstoreurl', 'auth.bruteforce.max-attempts',
    'auth.bruteforce.protection.enabled', 'auth.bruteforce.protection.force.database',
    'auth.bruteforce.protection.testing', 'auth.storeCryptedPassword', 'auth.webauthn.enabled',
    'auto_logout', 'binary_search_paths', 'bulkupload.enabled', 'cache_app_config',
    'cache_chunk_gc_ttl', 'cache_path', 'carddav_sync_request_timeout',
    'carddav_sync_request_truncation', 'check_data_directory_permissions',
    'check_for_working_htaccess', 'check_for_working_wellknown_setup', 'cipher',
    'comments.managerFactory', 'config_is_read_only', 'connectivity_check_domains',
    'cookie_domain', 'copied_sample_config', 'core.login_flow_v2.allowed_user_agents',
    'csrf.optout', 'customclient_android', 'customclient_desktop', 'customclient_fdroid',
    'customclient_ios', 'customclient_ios_appid', 'data-fingerprint', 'datadirectory',
    'davstorage.request_timeout', 'db.log_request_id', 'dbdriveroptions', 'dbhost', 'dbname',
    'dbpassword', 'dbpersistent', 'dbreplica', 'dbtableprefix', 'dbtype', 'dbuser', 'debug',
    'default_language', 'default_locale', 'default_phone_region', 'default_timezone', 'defaultapp',
    'diagnostics.logging', 'diagnostics.logging.threshold', 'documentation_url.server_logs',
    'enable_lazy_objects', 'enable_non-accessible_features', 'enable_previews',
    'enabledPreviewProviders', 'encryption.use_legacy_base64_encoding', 'enforce_theme',
    'external_storage.auth_availability_delay', 'filelocking.debug', 'filelocking.ttl',
    'files.chunked_upload.max_parallel_count', 'files.chunked_upload.max_size',
    'files.trash.delete', 'files_external_allow_create_new_local', 'files_no_background_scan',
    'filesystem_cache_readonly', 'filesystem_check_changes', 'forbidden_filename_basenames',
    'forbidden_filename_characters', 'forbidden_filename_extensions', 'forbidden_filenames',
    'force_language', 'force_locale', 'forwarded_for_headers', 'gs.enabled', 'gs.federation',
    'has_internet_connection', 'hashingCost', 'hashingMemoryCost', 'hashingThreads',
    'hashingTimeCost', 'hashing_default_password', 'hide_login_form',
    'htaccess.IgnoreFrontController', 'htaccess.RewriteBase', 'installed', 'instanceid',
    'knowledgebase.embedded', 'knowledgebaseenabled', 'ldapUserCleanupInterval', 'ldap_log_file',
    'localstorage.allowsymlinks', 'localstorage.umask', 'localstorage.unlink_on_truncate',
    'log.backtrace', 'log.condition', 'log_query', 'log_rotate_size', 'log_type', 'log_type_audit',
    'logdateformat', 'logfile', 'logfile_audit', 'logfilemode', 'login_form_autocomplete',
    'login_form_timeout', 'loglevel', 'loglevel_dirty_database_queries', 'loglevel_frontend',
    'logo_url', 'logtimezone', 'lookup_server', 'lost_password_link', 'mail_domain',
    'mail_from_address', 'mail_send_plaintext_only', 'mail_sendmailmode', 'mail_smtpauth',
    'mail_smtpdebug', 'mail_smtphost', 'mail_smtpmode', 'mail_smtpname', 'mail_smtppassword',
    'mail_smtpport', 'mail_smtpsecure', 'mail_smtpstreamoptions', 'mail_smtptimeout',
    'mail_template_class', 'maintenance', 'maintenance_window_start',
    'max_file_conversion_filesize', 'max_filesize_animated_gifs_public_sharing',
    'maximum.supported.desktop.version', 'memcache.distributed', 'memcache.local',
    'memcache.locking', 'memcached_options', 'memcached_servers', 'metadata_max_filesize',
    'minimum.supported.desktop.version', 'mount_file', 'mysql.collation', 'mysql.utf8mb4',
    'no_unsupported_browser_warning', 'objectstore',
    'objectstore.multibucket.preview-distribution', 'openssl', 'overwrite.cli.url',
    'overwritecondaddr', 'overwritehost', 'overwriteprotocol', 'overwritewebroot',
    'part_file_in_storage', 'passwordsalt', 'pgsql_ssl', 'preview_concurrency_all',
    'preview_concurrency_new', 'preview_ffmpeg_path', 'preview_ffprobe_path',
    'preview_imaginary_key', 'preview_imaginary_url', 'preview_libreoffice_path',
    'preview_max_filesize_image', 'preview_max_memory', 'preview_max_x', 'preview_max_y',
    'profile.enabled', 'profiler', 'profiling.path', 'profiling.request', 'profiling.request.rate',
    'profiling.sample', 'profiling.sample.rate', 'profiling.sample.rotation', 'profiling.secret',
    'projects.enabled', 'proxy', 'proxyexclude', 'proxyuserpwd', 'query_log_file',
    'query_log_file_backtrace', 'query_log_file_parameters', 'query_log_file_requestid',
    'quota_include_external_storage', 'ratelimit.protection.enabled', 'ratelimit_overwrite',
    'redis', 'redis.cluster', 'redis_log_file', 'reduce_to_languages', 'reference_opengraph',
    'remember_login_cookie_lifetime', 'secret', 'security.ipv6_normalized_subnet_size',
    'session_keepalive', 'session_lifetime', 'session_relaxed_expiry', 'share_folder',
    'sharing.allow_custom_share_folder', 'sharing.allow_disabled_password_enforcement_groups',
    'sharing.enable_mail_link_password_expiration', 'sharing.enable_share_accept',
    'sharing.enable_share_mail', 'sharing.federation.allowSelfSignedCertificates',
    'sharing.force_share_accept', 'sharing.mail_link_password_expiration_interval',
    'sharing.managerFactory', 'sharing.maxAutocompleteResults', 'sharing.minSearchStringLength',
    'simpleSignUpLink.shown', 'skeletondirectory', 'sort_groups_by_name', 'sqlite.journal_mode',
    'supportedDatabases', 'syslog_tag', 'syslog_tag_audit', 'systemtags.managerFactory',
    'tempdirectory', 'templatedirectory', 'theme', 'theming.standalone_window.enabled',
    'token_auth_activity_update', 'token_auth_enforced', 'transferIncomingShares',
    'trashbin_retention_obligation', 'trusted_domains', 'trusted_proxies',
    'unified_search.enabled', 'updatechecker', 'updatedirectory', 'updater.release.channel',
    'updater.server.url', 'upgrade.cli-upgrade-link', 'upgrade.disable-web',
    'user_ini_additional_lines', 'version', 'versions_retention_obligation',
))

OTHER_CONFIG_KEYS = frozenset((
    'activity_expire_days', 'activity_expire_exclude_users', 'activity_use_cached_mountpoints',
    'allow_user_to_change_email', 'app_install_overwrite', 'asset-pipeline.enabled',
    'circles.force_nc_base', 'commandbus', 'dbport', 'debug.force-full-fs-setup',
    'desktopEnterpriseChannel', 'dns_pinning', 'enable_avatars', 'enable_version_deletion',
    'enable_version_labeling', 'encryption.key_storage_migrated',
    'encryption.legacy_format_support', 'encryption_skip_signature_check', 'extendedSupport',
    'filelocking.enabled', 'forbidden_chars', 'fs_mount_cache_duration', 'gss.jwt.key',
    'gss.mockup', 'gss.mode', 'has_valid_subscription', 'integrity.check.disabled',
    'ldapProviderFactory', 'lexicon.default.userconfig', 'lexicon.default.userconfig.enforced',
    'localstorage.case_insensitive', 'mail_smtpauthtype', 'oauth2.enable_oc_clients',
    'objectstore_multibucket', 'one-click-instance', 'one-click-instance.link',
    'one-click-instance.user-limit', 'pollinterval', 'preview_format', 'profiling.event_type',
    'registration_link', 'support.backend', 'token_auth_token_retention',
    'token_auth_wipe_token_retention', 'twofactor_enforced', 'twofactor_enforced_excluded_groups',
    'twofactor_enforced_groups', 'updater.secret', 'webdav-root',
))

KNOWN_CONFIG_KEYS = SAMPLE_CONFIG_KEYS | OTHER_CONFIG_KEYS

# Apps keep free-form settings in config.php under their own prefixes; keys
# starting with one of these never cause an "unknown key" warning.
FREEFORM_KEY_PREFIXES = (
    'app.',
    'apps.',
    'files_external',
    'fulltextsearch',
    'ldap',
    'memories.',
    'notify_push',
    'oidc_login',
    'onlyoffice',
    'richdocuments',
    'social_login',
    'spreed.',
    'twofactor_',
    'user_oidc',
    'user_saml',
)
