"""Which ports of a host accept a TCP connection; prints {port: connect_ex errno}.

python3 -c "$(cat connect.py)" HOST PORTS_JSON
"""

import json
import socket
import sys

host, ports = sys.argv[1], json.loads(sys.argv[2])
found = {}
for port in ports:
    with socket.socket() as s:
        s.settimeout(5)
        found[port] = s.connect_ex((host, port))
print(json.dumps(found))
