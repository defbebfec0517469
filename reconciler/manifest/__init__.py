"""The manifests on disk: discovery, YAML with positions, validation into ``model.DesiredState``, ``fmt`` and
``import``.
"""
