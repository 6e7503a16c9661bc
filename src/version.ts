// The one place the version lives for code (kept equal to package.json by test/unit/version.test.ts).
export const VERSION = '0.2.0';
