"""Driving running ComfyUI servers over their HTTP/WebSocket API (Qt-free).

``client`` talks to one server (queue a workflow, follow it, download its outputs, cancel it),
``protocol`` reads the server's messages and error answers, ``validate`` checks a workflow against
the server's ``/object_info`` before it is sent, ``names`` gives every LoRA sent to a server a
name that is unique to its bytes (ComfyUI caches by file name). ``pool`` keeps the servers of
Settings healthy-checked as one job lane each and retries a failed job elsewhere;
``preview_backend`` is the ``comfyui`` preview backend built on them.
"""
