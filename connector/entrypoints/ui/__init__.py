"""The web channel for people (`/ui/`): server-rendered pages (Jinja2 templates in
`templates/`, texts in `labels.toml`), mounted on the API's app. `pages` holds the routes,
`session` the cookie, roles and CSRF checks, `passwords` the password records, `i18n` the
language of a page."""
