"""The search space: layer specs, the modules built from them, the backbone spaces, presets.

Layer specs (:mod:`~hnas_edge.space.specs`) import nothing of the package; each module that
implements specs registers its builders when imported. This package names those modules, so that
``spec.build()`` finds its builder whoever imported what; they are imported on the first build,
not here, because reading a LUT needs specs and not torch.
"""

from hnas_edge.space.specs import set_builder_loader


def _import_builders() -> None:
    import hnas_edge.space.blocks  # noqa: F401  (each registers its builders on import)
    import hnas_edge.space.fusion  # noqa: F401
    import hnas_edge.space.maxout  # noqa: F401


set_builder_loader(_import_builders)
