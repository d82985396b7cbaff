import os

if "SURGE_ZYGOTE_FD" in os.environ:
    from surge.runtime.zygote import main
else:
    from surge.runtime.container import main

main()
