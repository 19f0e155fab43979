"""Stand-ins for services, from a recording (``lab.mock``).

- recording.py: the calls to one service in a tap's recording, answered, and its
  description (recorded, or inferred from the calls);
- start.py: its options checked, its recording read, the service's queue looked at;
- stand_in.py: the object served under the service's name, and the running :class:`Mock`.
"""

from .recording import RecordedCall, Recording, infer_description
from .stand_in import Mock, StandIn, stand_in
from .start import MockOptions, beside_the_service, recording_for

__all__ = [
    "Mock",
    "MockOptions",
    "RecordedCall",
    "Recording",
    "StandIn",
    "beside_the_service",
    "infer_description",
    "recording_for",
    "stand_in",
]
