// @types/react-dom is not installed; the one function the tests use.
declare module 'react-dom/server' {
  export function renderToString(element: import('react').ReactNode): string;
}
