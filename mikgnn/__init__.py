"""MI-KGNN: multi-interaction knowledge-graph neural network recommender (plain PyTorch).

    import mikgnn
    data = mikgnn.load("music")
    model = mikgnn.fit(data, model="mikgnn", epochs=40)
    model.recommend(["2", "3"], k=10)

``load``, ``fit``, ``Model`` and ``Dataset`` come from ``mikgnn.api``, imported on first use,
so that ``import mikgnn.<module>`` (what Ray workers do) stays light.
"""

__version__ = "0.1.0"
__all__ = ["Dataset", "Model", "fit", "load"]


def __getattr__(name: str):
    if name in __all__:
        from mikgnn import api

        return getattr(api, name)
    raise AttributeError(f"module 'mikgnn' has no attribute {name!r}")
