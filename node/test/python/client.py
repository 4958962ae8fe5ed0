# Drives js-host's Python client (PyPI js-host==0.2.0) against jshost-node.
# Usage: python3 client.py MODE CONFIG_FILE PATH_TO_BIN   (MODE: direct | manager)
# Prints one JSON line with what the client got; exits 3 if the client is not installed.
import json
import os
import sys

try:
    from js_host.conf import settings
    from js_host.function import Function
    from js_host.exceptions import FunctionError
except ImportError as e:  # pragma: no cover
    print(json.dumps({'skip': 'python js-host not importable: %s' % e}))
    sys.exit(3)

mode, config_file, bin_path = sys.argv[1:4]

settings.configure(
    SOURCE_ROOT=os.path.dirname(config_file),
    CONFIG_FILE=config_file,
    PATH_TO_BIN=bin_path,
    PATH_TO_NODE=os.environ.get('NODE', 'node'),
    USE_MANAGER=(mode == 'manager'),
    VERBOSITY=0,
)

result = {
    'echo': Function('echo').call(name='World', n=[1, 2]),
    'hello': Function('hello').call(name='Py'),
}
try:
    Function('fails').call()
    result['error'] = None
except FunctionError as e:
    result['error'] = str(e)

from js_host.host import host
result['status'] = host.get_status()
result['managed'] = host.manager is not None
print(json.dumps(result))
