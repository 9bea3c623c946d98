"""The pytest plugin: models declared in a project's ``[tool.etds]`` become verified test items.

Registered by the package (entry point ``pytest11``, name ``etds``: :mod:`.plugin`) and inert in
a project without the table. :mod:`.config` reads and checks the table, :mod:`.loading` builds
an entry's model, :mod:`.checks` runs its mode's checks (:mod:`.expect` for the ``expect``
table), :mod:`.items` is the collection tree, :mod:`.certificates` the certificate folder,
:mod:`.summary` the terminal table and :mod:`.fixture` the ``etds_compile`` fixture. Nothing
imports torch until an item runs.
"""
