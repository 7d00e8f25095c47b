"""The HTTP surface around the SDK's app: who may reach what, and how it is served.

``ingress`` checks credentials, forwarded headers and the body limit in one place;
``request_guard`` answers malformed SWML and SWAIG bodies with a 4xx instead of the SDK's
500; ``security_headers`` adds the headers every answer carries; ``sdk_surgery`` replaces
what the SDK wires that this product must not keep (its ``/ready``, its middleware, its
lifespan); ``readiness`` watches the dependencies ``/ready`` reports; ``serving`` runs
uvicorn; ``logging_setup`` makes every log line one JSON line.
"""
