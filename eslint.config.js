// @ts-check
/**
 * ESLint with typescript-eslint's type-checked rules: above all no-floating-promises and
 * no-misused-promises, since an unawaited promise in the route object is an unhandled rejection
 * waiting to happen. Formatting is Prettier's job, not ESLint's.
 */
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules", ".wrangler", "src/generated", "bench/results", "docs/upstream", "**/*.js", "**/*.mjs"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: ["./tsconfig.json", "./tsconfig.node.json"], tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      // `const { dropped, ...rest } = value` is how a field is left out of a copy.
      "@typescript-eslint/no-unused-vars": ["error", { ignoreRestSiblings: true }],
    },
  },
  {
    // The boundary between the HTTP side and the route side: `src/contract/` is what both (and
    // the configuration) agree on, and depends on nothing of the gateway's.
    files: ["src/contract/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          // Only its own files (./x): nothing that climbs out of it, no package.
          patterns: [
            { regex: "^(?!\\./)", message: "src/contract imports nothing but its own files (./x)." },
            { regex: "/\\.\\./", message: "src/contract imports nothing but its own files (./x)." },
          ],
        },
      ],
    },
  },
  {
    // The configuration is read and checked by every side (the Worker, the route objects, the
    // scripts): it may use the contract, not the HTTP side or the route side.
    files: ["src/config/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              regex: "^(?!\\./|\\.\\./contract/|valibot$|yaml$)",
              message: "src/config imports its own files, src/contract, valibot and yaml: not the HTTP or route side.",
            },
            { regex: "/\\.\\./", message: "src/config imports its own files, src/contract, valibot and yaml." },
          ],
        },
      ],
    },
  },
  {
    // The HTTP side reaches a route shard only through the contract's `RouteApi`
    // (src/http/route-client.ts): nothing of the route side, nor of the servers that hold it.
    files: ["src/http/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              regex: "(^|/)\\.\\./(\\.\\./)?(amqp|server)/",
              message: "src/http talks to a route shard through src/contract (RouteApi), not src/amqp or src/server.",
            },
          ],
        },
      ],
    },
  },
  {
    // The route side acts on the contract's settings and calls: not on the configuration's
    // schemas, nor on anything of the HTTP side or the servers.
    files: ["src/amqp/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              regex: "^\\.\\./(config|http|server)/",
              message: "src/amqp imports src/contract (and shared modules), not src/config, src/http or src/server.",
            },
          ],
        },
      ],
    },
  },
  {
    // Tests read JSON answers as `(await response.json()) as T`: the same form in Node (where
    // json() is not generic) and in workerd (where it is, and this rule would want json<T>()).
    // `expect.any()` and friends are typed any by vitest.
    files: ["test/**"],
    rules: {
      "@typescript-eslint/no-unnecessary-type-assertion": "off",
      "@typescript-eslint/no-unsafe-assignment": "off",
    },
  },
);
