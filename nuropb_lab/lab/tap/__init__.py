"""The wire tap: every request, response, command and event of a mesh, the service graph and
trace waterfalls.

- capture.py: the tap's queue (the firehose, or copies) and the hot path to rows and calls;
- calls.py: requests paired with their deliveries and responses (a bounded pending map);
- tables.py: ``df``, ``calls``, statistics, timings, traces (also of a tap loaded from a file);
- pictures.py: the service graph and the trace waterfall;
- firehose.py: switching RabbitMQ's tracing on and off, and telling an orphaned one;
- tap.py: the live :class:`Tap`; store.py: its file; loaded.py: a tap loaded from one;
- taps.py and replay.py: the Lab's parts (session.py declares their faces): taps and the
  firehose switch, sending a captured request again.

Here only what a user holds: the parts import the Lab's connections, which import this.
"""

from .firehose import FirehoseState
from .loaded import LoadedTap, load_tap
from .tables import TapData, Trace
from .tap import Tap

__all__ = ["FirehoseState", "LoadedTap", "Tap", "TapData", "Trace", "load_tap"]
