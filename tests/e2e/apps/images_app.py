"""Functions running in a built image (tests/e2e/test_images.py). The wheel path comes from the
test; inside a container the Image calls are inert, so it need not exist there."""

import os
import sys

import surge

WHEEL = os.environ.get("SURGE_TEST_WHEEL", "tinypkg-0.1-py3-none-any.whl")
image = (surge.Image.debian_slim()
         .pip_install(WHEEL)
         .env({"IMAGE_GREETING": "hello from the image"})
         .add_local_dir(os.environ.get("SURGE_TEST_IMAGE_DIR", "."), "/srv/surge-test-files")
         .workdir("/srv/surge-test-files"))

app = surge.App("images-e2e")


@app.function(image=image)
def probe() -> dict[str, object]:
    import tinypkg  # installed in the image only

    return {"value": tinypkg.VALUE, "prefix": sys.prefix, "executable": sys.executable,
            "greeting": os.environ.get("IMAGE_GREETING"), "cwd": os.getcwd(),
            "files": sorted(os.listdir("/srv/surge-test-files")),
            "data": open("/srv/surge-test-files/data.txt").read()}


@app.function()
def plain() -> str:
    return sys.prefix
