// wrangler's default module rules: an imported .html file is its text.
declare module "*.html" {
  const text: string;
  export default text;
}
