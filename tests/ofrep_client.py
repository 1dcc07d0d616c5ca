"""An application using the OpenFeature Python SDK with its OFREP provider (both from PyPI), asking the
companion what the e2e test asks Envoy: is this user on the canary?

  ofrep_client.py BASE_URL FLAG eval USERS.json   -> prints a JSON list of booleans, one per user
  ofrep_client.py BASE_URL FLAG watch USER        -> prints "ready", then the wall time (s) at which the
                                                     flag turned false for USER, polling every 20 ms
"""
import json
import sys
import time

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext


def main() -> None:
    base, flag, mode, arg = sys.argv[1:5]
    api.set_provider(OFREPProvider(base_url=base))
    client = api.get_client()
    if mode == "eval":
        with open(arg) as f:
            users = json.load(f)
        out = [
            client.get_boolean_value(flag, False, EvaluationContext(targeting_key=u["id"], attributes=u["attrs"]))
            for u in users
        ]
        print(json.dumps(out))
    elif mode == "watch":
        ctx = EvaluationContext(targeting_key=arg)
        assert client.get_boolean_value(flag, False, ctx) is True, "the watched user must start on the canary"
        print("ready", flush=True)
        while client.get_boolean_value(flag, False, ctx):
            time.sleep(0.02)
        print(f"{time.time():.3f}", flush=True)


if __name__ == "__main__":
    main()
