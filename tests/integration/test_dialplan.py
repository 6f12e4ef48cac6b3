"""The dialplan runs without phones: trace, show, patterns, DB, reload."""
import os
import re

from harness import Tandem, check, finish

t = Tandem()
with t:
    status, out = t.rx("dialplan trace 100@demo 1001")
    check(status == 0, "trace runs")
    check("Executing [100@demo:1] Answer" in out, "trace shows Answer at priority 1")
    check("Set GREETING=Welcome to Tandem Demo" in out, "trace shows variables set, with globals substituted")
    check("Executing [h@demo:1] NoOp(\"Call ended: 16\")" in out, "h extension runs after the call")
    check("NORMAL_CLEARING" in out, "trace reports the hangup cause")

    status, out = t.rx("dialplan show 1234@demo")
    check(status == 0 and "'_1XXX' =>" in out, "dialplan show EXTEN@CONTEXT names the matching pattern")
    status, out = t.rx("dialplan show 300@default")
    check("demo-extra" in out and "'300' =>" in out, "dialplan show follows includes")
    status, out = t.rx("dialplan show demo")
    check(status == 0 and "Include =>" in out and "'demo-extra'" in out, "dialplan show CONTEXT lists includes")

    # DND toggle through the key/value store.
    t.rx("dialplan trace *78@demo 1234")
    status, out = t.rx("database get DND 1234")
    check("Value: 1" in out, "*78 stored DND in the key/value store")
    status, out = t.rx("dialplan trace 1234@demo 2000")
    check("Busy" in out and "USER_BUSY" in out, "extension with DND on is busy")
    t.rx("dialplan trace *79@demo 1234")
    status, out = t.rx("dialplan trace 1234@demo 2000")
    check("Would ring 1234" in out, "extension with DND off rings")

    status, out = t.rx("dialplan trace 555@demo")
    check("Executing [i@demo:1]" in out and "Set INVALID_EXTEN=555" in out, "invalid extension goes to i")

    status, out = t.rx("dialplan trace 200@demo")
    check("Executing [s@sub-announce:1]" in out and "Set GOSUB_RETVAL=" in out, "Gosub/Return through a time condition")

    status, out = t.rx("dialplan trace 300@demo")
    m = re.search(r"Set RESULT=(\d+)", out)
    check(m and 11 <= int(m.group(1)) <= 16, "expression with RAND evaluated")

    # A broken reload keeps the running plan and names file:line.
    ext = os.path.join(t.conf, "extensions.conf")
    with open(ext) as f:
        good = f.read()
    with open(ext, "a") as f:
        f.write("\n[new]\nexten => 1,1,Wait(1,2,3)\n")
    status, out = t.rx("dialplan reload")
    check(status != 0 and re.search(r"extensions\.conf:\d+: Wait takes 1 argument", out), "broken reload reports file:line")
    status, out = t.rx("dialplan trace 100@demo")
    check("Executing [100@demo:1] Answer" in out, "running plan kept after a broken reload")
    with open(ext, "w") as f:
        f.write(good + "\n[new]\nexten => 1,1,Set(NEWPLAN=yes)\n")
    status, out = t.rx("dialplan reload")
    check(status == 0 and "Dialplan reloaded" in out, "fixed reload applies")
    status, out = t.rx("dialplan trace 1@new")
    check("Set NEWPLAN=yes" in out, "new plan in force")
finish()
