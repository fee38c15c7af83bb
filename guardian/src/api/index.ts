/** The admin API (`/api/v1`), its change stream and the pieces the daemon and the CLI use. */
export { createAdminApi, createOfrepStream, type AdminApiDeps } from './app.ts';
export { createAuthenticator, FailureLimiter, ROLES, type AuthOptions, type Authenticator, type Principal, type Role } from './auth.ts';
export { ChangeHub, type ChangeHubOptions, type StreamMessage } from './hub.ts';
export { CHANGE_CHANNEL, pgChangeFeed, pgliteChangeFeed, pipeFeed, type ChangeFeed, type ListenFn } from './feed.ts';
export { NO_DAEMON, type GuardianStatusSnapshot, type StatusProvider } from './status.ts';

