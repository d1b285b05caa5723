"""Every distribution installed beside the interpreter that runs this:
normalized name -> version, as JSON.

    VENV/bin/python -c "$(cat distributions.py)"
"""

import importlib.metadata
import json
import re

print(
    json.dumps(
        {
            re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version
            for d in importlib.metadata.distributions()
        }
    )
)
