"""The distributed layer: everything that imports Ray or MLflow lives here (and in pipelines/)."""
