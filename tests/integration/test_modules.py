"""Module loading: good, failing, wrong ABI, missing dependency, and an out-of-tree module."""
import os
import subprocess
import tempfile

from harness import BIN, SRC, Tandem, check, finish

BUILD = os.environ.get("TANDEM_BUILD_DIR", "build")
TEST_MODULES = os.path.join(BUILD, "lib", "tandem", "test-modules")

t = Tandem()
with t:
    status, out = t.rx(f"module load {TEST_MODULES}/test_mod_bad_abi.so")
    check(status != 0 and "rebuild it against Tandem SDK" in out, "wrong ABI refused with a rebuild message")
    check(t.proc.poll() is None, "PBX still running after a wrong-ABI module")

    status, out = t.rx(f"module load {TEST_MODULES}/test_mod_fails.so")
    check(status != 0 and "test_mod_fails failed to load" in out and "/nonexistent/device" in out,
          "failing load() reported with the module's name and reason")
    status, out = t.rx("core show application TestFails")
    check(status != 0, "nothing of a failed module stays registered")

    status, out = t.rx(f"module load {TEST_MODULES}/test_mod_needs_missing.so")
    check(status != 0 and "no_such_module" in out, "missing dependency refused")

    status, out = t.rx(f"module load {TEST_MODULES}/test_mod_good.so")
    check(status == 0, "good module loads")
    status, out = t.rx("testgood hello")
    check(status == 0 and "hello from test_mod_good" in out, "its CLI command works")
    status, out = t.rx("module unload test_mod_good")
    check(status == 0, "good module unloads")
    status, out = t.rx("testgood hello")
    check(status == 127, "its CLI command is gone after unload")
    status, out = t.rx("core show application TestGood")
    check(status != 0, "its application is gone after unload")

# The out-of-tree example, built against the installed SDK.
prefix = tempfile.mkdtemp(prefix="tandem-sdk-")
r = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], capture_output=True, text=True, timeout=300)
check(r.returncode == 0, "SDK installs to a prefix")
ex_build = os.path.join(prefix, "example-build")
r = subprocess.run(["cmake", "-S", os.path.join(SRC, "contrib", "examples", "app_hello"), "-B", ex_build,
                    f"-DCMAKE_PREFIX_PATH={prefix}"], capture_output=True, text=True, timeout=300)
check(r.returncode == 0, "example configures with find_package(Tandem)" + ("" if r.returncode == 0 else "\n" + r.stdout + r.stderr))
r = subprocess.run(["cmake", "--build", ex_build], capture_output=True, text=True, timeout=600)
check(r.returncode == 0, "example builds" + ("" if r.returncode == 0 else "\n" + r.stdout + r.stderr))
so = os.path.join(ex_build, "app_hello.so")

def add_hello(conf):
    with open(os.path.join(conf, "extensions.conf"), "a") as f:
        f.write("\n[hello]\nexten => 1,1,Hello(world)\n same => n,Hangup()\n")
    with open(os.path.join(conf, "hello.conf"), "w") as f:
        f.write("[general]\ngreeting = Bonjour\n")

t = Tandem(edit=add_hello)
with t:
    status, out = t.rx(f"module load {so}")
    check(status == 0, "example module loads into the PBX" + ("" if status == 0 else ": " + out))
    t.rx("dialplan reload")
    status, out = t.rx("dialplan trace 1@hello")
    check("Set HELLO=Bonjour, world!" in out, "example application runs with its own config")
    status, out = t.rx("hello count")
    check("ran 1 times" in out, "example CLI command")
subprocess.run(["rm", "-rf", prefix])
finish()
