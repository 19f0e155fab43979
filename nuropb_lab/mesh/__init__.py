"""The nuropb protocol on aio-pika: codec, errors, crypto, topology, transport, services, API.

Nothing here imports IPython, ipywidgets or pandas.
"""

from .api import RMQAPI
from .connect import MeshNotFound
from .decorators import NuropbContextManager, nuropb_context, publish_to_mesh
from .descriptions import DescribeConflict, EncryptionRefused
from .errors import (
    NuropbAuthenticationError,
    NuropbAuthorizationError,
    NuropbCallAgain,
    NuropbCallAgainReject,
    NuropbDeprecatedError,
    NuropbException,
    NuropbHandlingError,
    NuropbMessageError,
    NuropbNotDeliveredError,
    NuropbSuccess,
    NuropbTimeoutError,
    NuropbTransportError,
    NuropbValidationError,
)
from .events import MeshEvent, Subscription
from .known_keys import KnownKeys, KnownKeysError
from .management import ManagementAPI, ManagementUnavailable
from .nodes import Nodes, QueueUnavailable
from .topology import Topology, configure_mesh
from .urls import AmqpTarget, mask_secrets, parse_amqp_url

__all__ = [
    "RMQAPI",
    "AmqpTarget",
    "DescribeConflict",
    "EncryptionRefused",
    "KnownKeys",
    "KnownKeysError",
    "ManagementAPI",
    "ManagementUnavailable",
    "MeshEvent",
    "MeshNotFound",
    "Nodes",
    "NuropbAuthenticationError",
    "NuropbAuthorizationError",
    "NuropbCallAgain",
    "NuropbCallAgainReject",
    "NuropbContextManager",
    "NuropbDeprecatedError",
    "NuropbException",
    "NuropbHandlingError",
    "NuropbMessageError",
    "NuropbNotDeliveredError",
    "NuropbSuccess",
    "NuropbTimeoutError",
    "NuropbTransportError",
    "NuropbValidationError",
    "QueueUnavailable",
    "Subscription",
    "Topology",
    "configure_mesh",
    "mask_secrets",
    "nuropb_context",
    "parse_amqp_url",
    "publish_to_mesh",
]
