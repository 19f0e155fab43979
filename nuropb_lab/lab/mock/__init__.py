"""Stand-ins for services, from a recording (``lab.mock``).

- recording.py: the calls to one service in a tap's recording, answered, and its
  description (recorded, or inferred from the calls);
- stand_in.py: the object served under the service's name, and the running :class:`Mock`.
"""

from .recording import RecordedCall, Recording, infer_description
from .stand_in import Mock, StandIn, stand_in

__all__ = ["Mock", "RecordedCall", "Recording", "StandIn", "infer_description", "stand_in"]
