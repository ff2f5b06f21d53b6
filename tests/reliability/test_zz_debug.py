import subprocess
from tests.reliability.conftest import env  # noqa
def test_swap(env):
    src = env.src
    (src / "swap2").mkdir()
    (src / "swap2" / "inner").write_text("dir that becomes a file")
    env.daemon.start()
    env.converge()
    subprocess.run(["rm", "-r", "--", str(src / "swap2")], check=True)
    (src / "swap2").write_text("now a file")
    env.converge(timeout=40)
