"""Process settings that must be made before torch is imported.

OpenMP's wait policy is read once, when torch loads libgomp: idle threads then sleep instead of
spinning. On a busy or small machine spinning threads make multi-threaded torch 5-20x slower; on an
idle one passive waiting costs little (benchmarks/RESULTS.md, "Fast CPU training"). A value the
user set wins.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
