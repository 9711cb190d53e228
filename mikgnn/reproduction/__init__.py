"""The paper's Tables 2-9 reproduced: the tables as grids of cells (``tables``, ``cells``), the
paper's own figures (``paper``, ``paper_figures.csv``), and the report read back from MLflow
(``collected``, ``claims``, ``plots``, ``report``). Ray runs the cells in
``mikgnn.distributed.reproduce_job``; the entry points are pipelines/reproduce.py and report.py."""
