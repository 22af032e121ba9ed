"""Put on ``PYTHONPATH`` by bench_serve.py: ``churnops serve`` with the msgspec decoder
(msgspec_decoder.py beside this file) in place of the compiled one, everything else equal."""

import os
import sys

if os.environ.get("CHURNOPS_BENCH_DECODER") == "msgspec":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import msgspec_decoder

    from churnops.serving import decode

    decode.v1 = msgspec_decoder.v1
    decode.v2 = msgspec_decoder.v2
    print("bench: msgspec decoder in place of the compiled one", file=sys.stderr, flush=True)
