"""Concurrent Burgers: the course's props, probes and timeline chart.

* :mod:`concurrent_burgers.props`: the stories' simulated world (slow files, ...);
* :mod:`concurrent_burgers.testing`: probes, the hang-proof runner and checks that
  the hidden tests use;
* :mod:`concurrent_burgers.timeline`: draws an event log as a timeline chart.
"""

from concurrent_burgers.testing import EventLog, InFlightCounter

__all__ = ["EventLog", "InFlightCounter"]
