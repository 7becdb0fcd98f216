"""The CPU backend's host side: the twin of :mod:`rankseg.cuda`'s driver.

:mod:`rankseg.cpu.driver` runs one validated call of :meth:`rankseg.RankSEG.predict`
on the host, :mod:`rankseg.cpu.launchers` launches each pass of
:mod:`rankseg.kernels` (which holds compiled code only) over the rows, and
:mod:`rankseg.cpu.tasks` spreads a pass's work items over threads.
"""
