"""HTTP routes, one module per resource; each is a thin wrapper over `search.engine.Engine`."""
