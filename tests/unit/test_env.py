"""keras_legc._env: the machine a recorded file cites, its CPU's model and SIMD extensions."""

from keras_legc._env import cpu, machine

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma avx512f avx512_vnni amx_tile amx_int8

processor\t: 1
model name\t: Another model the first processor does not have
flags\t\t: fpu sse4_1
"""

ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 asimddp sve
CPU part\t: 0xd40
"""


def test_cpu_reads_the_first_processors_model_and_only_its_simd_extensions(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(X86)
    got = cpu(path)
    assert got["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert got["simd"] == sorted(
        ["sse4_1", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"]
    )


def test_cpu_reads_an_arm_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(ARM)
    assert cpu(path) == {"model": "0xd40", "simd": ["asimd", "asimddp", "sve"]}


def test_cpu_is_empty_without_a_cpuinfo_and_machine_carries_it(tmp_path):
    assert cpu(tmp_path / "absent") == {}
    got = machine()
    assert set(got) >= {"platform", "processor", "cpu", "cpu_count", "usable_cpus", "python"}
    assert isinstance(got["cpu"], dict)
