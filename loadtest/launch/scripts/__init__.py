"""Programs the launchers run with an *engine's* interpreter (never imported by loadtest itself).

They ship inside the package so an installed loadtest can start engines without its source
checkout; each imports only the standard library and its engine's own packages.
"""
