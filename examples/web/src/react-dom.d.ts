// @types/react-dom is not a dependency of this repository; the one function the example's browser
// entry uses (react-dom/server is declared in sdk/test/react-dom-server.d.ts for the type check).
declare module 'react-dom/client' {
  export function hydrateRoot(container: Element, children: import('react').ReactNode, options?: { onRecoverableError?: (error: unknown) => void }): unknown;
}
