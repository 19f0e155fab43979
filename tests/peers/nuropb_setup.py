"""Set a mesh up with nuropb 0.1.8's own helpers, as a nuropb user would.

Run by the python of the nuropb venv (not the lab's):

    python nuropb_setup.py AMQP_URL configure_mesh
    python nuropb_setup.py AMQP_URL configure_nuropb_rmq DL_QUEUE

``configure_mesh`` is ``nuropb.nuropb_api.configure_mesh`` (it creates the vhost through the
management API and names the dead-letter queue ``nuropb-dl-queue``). ``configure_nuropb_rmq``
is what ``RMQTransport.configure_rabbitmq`` does: ``rmq_lib.create_virtual_host`` then
``rmq_lib.configure_nuropb_rmq`` with the dead-letter queue named DL_QUEUE (a transport's
default is ``nuropb-{service}-dl``). Both declare the dead-letter queue with pika's defaults:
not durable. Prints ``DONE`` when the mesh is set up.
"""

import logging
import sys

from nuropb.nuropb_api import configure_mesh
from nuropb.rmq_lib import configure_nuropb_rmq, create_virtual_host, rmq_api_url_from_amqp_url


def main(url: str, helper: str, dl_queue: str | None) -> int:
    vhost = url.rsplit("/", 1)[-1]
    if helper == "configure_mesh":
        configure_mesh(mesh_name=vhost, connection_properties=url)
    elif helper == "configure_nuropb_rmq" and dl_queue:
        create_virtual_host(rmq_api_url_from_amqp_url(url), url)
        configure_nuropb_rmq(
            rmq_url=url,
            events_exchange="nuropb-events-exchange",
            rpc_exchange="nuropb-rpc-exchange",
            dl_exchange="nuropb-dl-exchange",
            dl_queue=dl_queue,
        )
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else None))
