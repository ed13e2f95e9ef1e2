"""The API's routers, one module per resource; each route builds a command, hands it to its
step in a unit of work and renders the result (no logic of its own)."""
