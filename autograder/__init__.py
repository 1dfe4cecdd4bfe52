"""The Concurrent Burgers grader: release student copies, grade submissions, check one notebook.

Layers, arrows pointing down: :mod:`.cli` → :mod:`.release`, :mod:`.reports`,
:mod:`.grading` → :mod:`.execute`, :mod:`.assemble` → :mod:`.course`.
"""
