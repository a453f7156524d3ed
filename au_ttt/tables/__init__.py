"""Tables I–III, Figure 1 and REPORT.md from run outputs (``au-ttt tables``).

``published`` holds the paper's numbers, ``collect`` reads and validates run directories, ``intervals``
is the subject-level bootstrap (pure numpy), ``uncertainty`` applies it to the runs' predictions (cell
intervals, paired comparisons, reproduction verdicts), ``build`` turns all of it into tables, ``render``
writes Markdown/LaTeX/CSV, ``figure`` draws Figure 1, ``report`` writes REPORT.md and ``make`` ties them
together and logs one MLflow parent per table row.
"""

from au_ttt.tables.make import TablesOutput, make_tables

__all__ = ["TablesOutput", "make_tables"]
