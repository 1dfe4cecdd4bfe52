"""The Concurrent Burgers grader: release student copies, grade submissions, check one notebook.

Layers, arrows pointing down:

* :mod:`.cli`: the commands, thin;
* :mod:`.intake` (what SUBMISSIONS holds, and what is not graded), :mod:`.gradebook`
  (nbgrader's gradebook, the record), :mod:`.reports` (sheets, feedback pages, tables),
  :mod:`.progress` (what `grade` shows while it works), :mod:`.hints`;
* :mod:`.grading` (one process per notebook, limits, regrading alone) →
  :mod:`.execute` (the kernel), :mod:`.assemble` (the notebook that is graded),
  :mod:`.guard` (tamper checks), :mod:`.sandbox` (confinement), :mod:`.release`
  (nbgrader's own release);
* :mod:`.course`: where things are.
"""
