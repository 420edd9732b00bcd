"""Generated logs shaped like loghub's 2k samples (Mac, Proxifier, OpenSSH, Spark) for benchmarks.

loghub's files are free for research but carry no licence for redistribution here, so the bench
data is generated: the same line shapes (syslog and log4j prefixes, process ids, host names, ports,
byte counts with units, durations, quoted values, key=value pairs, mixed alphanumeric ids, file
paths) with seeded random values, so every figure reproduces with
`python -m logllm_plugin.benchmarks.loghub_like --out DIR` (or `scripts/bench-data`).

The variety of each kind is set so the share of distinct raw lines is loghub-like; what matters
for the benchmark is how many *masked* lines stay distinct, which the masks decide.
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Callable

KINDS = ("mac", "proxifier", "openssh", "spark")
FILE_NAMES = {"mac": "Mac_like_2k.log", "proxifier": "Proxifier_like_2k.log",
              "openssh": "OpenSSH_like_2k.log", "spark": "Spark_like_2k.log"}


def _ip(r: random.Random) -> str:
    return ".".join(str(r.randint(1, 254)) for _ in range(4))


def _syslog_time(r: random.Random, t: list[int], month: str) -> str:
    t[0] += r.choice([0, 0, 1, 2, 5, 40])
    s = t[0]
    return f"{month} {1 + s // 86400 % 28:2d} {s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _openssh(r: random.Random, n: int) -> list[str]:
    users = ["webmaster", "test9", "chen", "pgadmin", "utsims", "inspur", "admin", "oracle", "git", "ubnt",
             "support", "user1", "ftpuser", "test", "guest", "nagios", "hadoop", "postgres"]
    # brute-force dictionaries: many user names, each tried a few times
    users += ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(3, 8))) for _ in range(40)]
    hosts = ["ns.marryaldkfaczcz.com", "ec2-52-80-34-196.cn-north-1.compute.amazonaws.com.cn",
             "5.36.59.76.dynamic-dsl-ip.omantel.net.om", "static.vnpt.vn", "host-212-47.example.net",
             "104-236-4-165.dynamic.bigcity.cn"]
    out: list[str] = []
    t = [6 * 3600]
    pid = 24200
    while len(out) < n:
        pid += r.choice([2, 2, 3, 5])
        ip = _ip(r)
        port = r.randint(30000, 65000)
        head = lambda: f"{_syslog_time(r, t, 'Dec')} LabSZ sshd[{pid}]:"  # noqa: E731
        flow = r.random()
        if flow < 0.45:  # root brute force
            rhost = r.choice([ip, r.choice(hosts)])
            out.append(f"{head()} pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={rhost}  user=root")
            out.append(f"{head()} Failed password for root from {ip} port {port} ssh2")
            if r.random() < 0.3:
                k = r.randint(2, 5)
                out.append(f"{head()} message repeated {k} times: [ Failed password for root from {ip} port {port} ssh2]")
                out.append(f"{head()} Disconnecting: Too many authentication failures for root [preauth]")
                out.append(f"{head()} PAM {k} more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={rhost}  user=root")
                out.append(f"{head()} PAM service(sshd) ignoring max retries; {k + 1} > 3")
            else:
                out.append(f"{head()} Received disconnect from {ip}: 11: Bye Bye [preauth]")
        elif flow < 0.75:  # invalid user
            user = r.choice(users) + (str(r.randint(1, 99)) if r.random() < 0.2 else "")
            if r.random() < 0.3:
                out.append(f"{head()} reverse mapping checking getaddrinfo for {r.choice(hosts)} [{ip}] failed - POSSIBLE BREAK-IN ATTEMPT!")
            out.append(f"{head()} Invalid user {user} from {ip}")
            out.append(f"{head()} input_userauth_request: invalid user {user} [preauth]")
            out.append(f"{head()} pam_unix(sshd:auth): check pass; user unknown")
            out.append(f"{head()} pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip} ")
            out.append(f"{head()} Failed password for invalid user {user} from {ip} port {port} ssh2")
            out.append(f"{head()} Connection closed by {ip} [preauth]" if r.random() < 0.5
                       else f"{head()} Received disconnect from {ip}: 11: Bye Bye [preauth]")
        elif flow < 0.85:
            out.append(f"{head()} Did not receive identification string from {ip}")
        elif flow < 0.93:
            out.append(f"{head()} Accepted password for fztu from {ip} port {port} ssh2")
            out.append(f"{head()} pam_unix(sshd:session): session opened for user fztu by (uid=0)")
            out.append(f"{head()} pam_unix(sshd:session): session closed for user fztu")
        else:
            out.append(f"{head()} Received disconnect from {ip}: 11: disconnected by user")
            out.append(f"{head()} error: Received disconnect from {ip}: 3: com.jcraft.jsch.JSchException: Auth fail [preauth]")
    return out[:n]


def _proxifier(r: random.Random, n: int) -> list[str]:
    apps = ["chrome.exe", "chrome.exe", "chrome.exe", "Dropbox.exe", "WeChat.exe", "svchost.exe", "YodaoDict.exe",
            "QQ.exe", "git-remote-https.exe", "putty.exe"]
    targets = ["proxy.cse.cuhk.edu.hk:5070", "www.google.com:443", "clients1.google.com:443",
               "d.dropbox.com:443", "client-lb.dropbox.com:443", "short.weixin.qq.com:80",
               "github.com:443", "s.youtube.com:443", "dict.youdao.com:80", "183.62.156.108:22",
               "api.weibo.com:443", "login.live.com:443", "mtalk.google.com:5228", "dl.google.com:443"]
    t = [16 * 3600]
    out: list[str] = []

    def size(b: int) -> str:
        return f"{b} bytes" if b < 1024 else f"{b} bytes ({b / 1024:.3g} KB)" if b < 1 << 20 else f"{b} bytes ({b / (1 << 20):.3g} MB)"

    while len(out) < n:
        t[0] += r.choice([0, 0, 0, 1, 2])
        s = t[0]
        stamp = f"[10.30 {s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}]"
        app, target = r.choice(apps), r.choice(targets)
        roll = r.random()
        if roll < 0.45:
            out.append(f"{stamp} {app} - {target} open through proxy proxy.cse.cuhk.edu.hk:5070 HTTPS")
        elif roll < 0.9:
            sent, recv = int(r.expovariate(1 / 1500)), int(r.expovariate(1 / 20000))
            life = r.choice(["<1 sec", "<1 sec", f"00:{r.randint(1, 59):02d}", f"{r.randint(1, 9):02d}:{r.randint(0, 59):02d}"])
            out.append(f"{stamp} {app} - {target} close, {size(sent)} sent, {size(recv)} received, lifetime {life}")
        elif roll < 0.96:
            out.append(f"{stamp} {app} - {target} error : Could not connect through proxy proxy.cse.cuhk.edu.hk:5070 - "
                       f"Proxy server cannot establish a connection with the target, status code {r.choice([403, 502, 504])}")
        else:
            out.append(f"{stamp} {app} *64 - {target} error : A connection request was canceled before the completion.")
    return out[:n]


def _mac(r: random.Random, n: int) -> list[str]:
    hosts = ["calvisitor-10-105-160-95", "authorMacBook-Pro", "calvisitor-10-105-162-178"]
    jobs = ["com.apple.icloud.fmfd.heartbeat", "com.apple.Safari.SafeBrowsing.Update", "com.apple.CacheDelete.daily",
            "com.apple.EscrowSecurityAlert.daily", "com.apple.suggestions.harvest"]
    t = [9 * 3600]
    pids = {"QQ": 10018, "symptomsd": 215, "mDNSResponder": 91, "com.apple.cts": 258, "networkd": 195,
            "sharingd": 30299, "secd": 276, "locationd": 82}

    def line(proc: str, pid: int, text: str) -> str:
        return f"{_syslog_time(r, t, 'Jul')} {r.choice(hosts)} {proc}[{pid}]: {text}"

    shapes: list[Callable[[], str]] = [
        lambda: line("kernel", 0, f"IOThunderboltSwitch<0>(0x0)::listenerCallback - Thunderbolt HPD packet for route = 0x0 port = {r.randint(10, 12)} unplug = 0"),
        lambda: line("com.apple.CDScheduler", r.choice([43, 258]), f"Thermal pressure state: {r.randint(0, 1)} Memory pressure state: 0"),
        lambda: line("QQ", pids["QQ"], f"FA||Url||taskID[{r.randint(2019352000, 2019359999)}] dealloc"),
        lambda: line("kernel", 0, f"ARPT: {r.randint(620000, 640000)}.{r.randint(0, 999999):06d}: AirPort_Brcm43xx::syncPowerState: WWEN[{r.choice(['enabled', 'disable'])}]"),
        lambda: line("kernel", 0, f"ARPT: {r.randint(620000, 640000)}.{r.randint(0, 999999):06d}: wl0: wl_update_tcpkeep_seq: Original Seq: {r.randint(1 << 30, 1 << 32)}, Ack: {r.randint(1 << 30, 1 << 32)}, Win size: 4096"),
        lambda: line("mDNSResponder", pids["mDNSResponder"], f"mDNS_DeregisterInterface: Frequent transitions for interface {r.choice(['awdl0', 'en0'])} (FE80:0000:0000:0000:D8A5:90FF:FEF5:{r.randint(0, 65535):04X})"),
        lambda: line("symptomsd", pids["symptomsd"], "__73-[NetworkAnalyticsEngine observeValueForKeyPath:ofObject:change:context:]_block_invoke unexpected switch value 2"),
        lambda: line("kernel", 0, "IO80211AWDLPeerManager::setAwdlAutoMode Resuming AWDL"),
        lambda: line("com.apple.cts", pids["com.apple.cts"], f"{r.choice(jobs)}: scheduler_evaluate_activity told me to run this job; however, but the start time isn't for {r.randint(100, 440000)} seconds.  Ignoring."),
        lambda: line("kernel", 0, f"PM response took {r.randint(100, 3000)} ms ({r.randint(20, 99)}, powerd)"),
        lambda: line("kernel", 0, f"ARPT: {r.randint(620000, 640000)}.{r.randint(0, 999999):06d}: wl0: Roamed or switched channel, reason #8, bssid 5c:50:15:{r.randint(16, 255):02x}:18:13, last RSSI -{r.randint(40, 90)}"),
        lambda: line("networkd", pids["networkd"], "nw_nat64_post_new_ifstate successfully changed NAT64 ifstate from 0x4 to 0x8000000000000000"),
        lambda: line("sandboxd", 129, f"([{r.randint(31000, 32000)}]): com.apple.Addres({r.randint(31000, 32000)}) deny network-outbound /private/var/run/mDNSResponder"),
        lambda: line("kernel", 0, f"Sandbox: com.apple.Addres({r.randint(31000, 32000)}) deny(1) network-outbound /private/var/run/mDNSResponder"),
        lambda: line("configd", 53, 'setting hostname to "authorMacBook-Pro.local"'),
        lambda: line("corecaptured", r.randint(31000, 32000), f"CCFile::captureLog Received Capture notice id: {r.randint(1498928000, 1498999999)}.{r.randint(0, 999999)}, reason = AuthFail:sts:5_rsn:0"),
        lambda: line("com.apple.WebKit.WebContent", r.randint(25000, 26000), f"[{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{r.randint(0, 999):03d}] <<<< CRABS >>>> crabsFlumeHostAvailable: [0x7f96{r.randint(0, 1 << 32):08x}] Byte flume reports host available again."),
        lambda: line("kernel", 0, f"AppleThunderboltNHIType2::waitForOk2Go2Sx - retries = {r.randint(1, 9)}"),
        lambda: line("sharingd", pids["sharingd"], f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{r.randint(0, 999):03d} : BTLE scanner Powered {r.choice(['On', 'Off'])}"),
        lambda: line("secd", pids["secd"], ' SOSAccountThisDeviceCanSyncWithCircle sync with device failure: Error Domain=com.apple.security.sos.error Code=1035 "Account identity not set" UserInfo={NSDescription=Account identity not set}'),
        lambda: line("kernel", 0, f"ARPT: {r.randint(620000, 640000)}.{r.randint(0, 999999):06d}: wl0: setup_keepalive: Local port: {r.randint(49152, 65535)}, Remote port: 443"),
        lambda: line("locationd", pids["locationd"], f"Location icon should now be in state '{r.choice(['Inactive', 'Active'])}'"),
        lambda: line("UserEventAgent", 43, f"Captive: [CNInfoNetworkActive:{r.randint(1000, 2000)}] en0: SSID 'CalVisitor' making interface primary (cache indicates network not captive)"),
        lambda: line("kernel", 0, f"en0: channel changed to {r.choice([1, 6, 11, 36, 149])}"),
        lambda: line("kernel", 0, f"AirPort: Link {r.choice(['Up', 'Down'])} on {r.choice(['awdl0', 'en0'])}"),
        lambda: line("GoogleSoftwareUpdateAgent", r.randint(30000, 40000), f"{2017}-07-0{r.randint(1, 8)} {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{r.randint(0, 999):03d} GoogleSoftwareUpdateAgent[{r.randint(30000, 40000)}/0x700000{r.randint(0, 1 << 20):05x}] [lvl=2] -[KSAgentApp updateProductWithProductID:usingEngine:] Checking for updates for \"com.google.Keystone\" using engine <KSUpdateEngine:0x{r.randint(0, 1 << 40):x}"),
    ]
    # Mac logs hold hundreds of message types of many processes, most seen a few times: types
    # built from a word list stand in for them (their words differ, so no mask can merge them).
    words = ["Bluetooth", "daemon", "cache", "invalidate", "token", "session", "wake", "sleep", "display",
             "keychain", "sync", "record", "zone", "peer", "assertion", "timer", "queue", "policy", "entry",
             "update", "reset", "handler", "scan", "launch", "agent", "bundle", "service", "socket", "reply",
             "request", "thread", "state", "power", "battery", "filter", "store", "index", "spotlight"]
    procs = ["com.apple.xpc.launchd", "sharingd", "secd", "cloudd", "apsd", "WindowServer", "Safari", "locationd",
             "mds", "bluetoothd", "powerd", "identityservicesd", "CalendarAgent", "accountsd", "nsurlsessiond"]
    types = []
    for _ in range(420):
        proc = r.choice(procs)
        text = " ".join(r.sample(words, r.randint(3, 6)))
        types.append((proc, text, r.random() < 0.5))
    rare: list[Callable[[], str]] = [
        (lambda p=p, x=x, v=v: line(p, r.randint(50, 900), f"{x} {r.randint(0, 5000)}" if v else x))
        for p, x, v in types]
    return [r.choice(shapes)() if r.random() < 0.6 else r.choice(rare)() for _ in range(n)]


def _spark(r: random.Random, n: int) -> list[str]:
    t = [20 * 3600 + 600]
    out: list[str] = []
    tid = 0

    def head(level: str, who: str) -> str:
        t[0] += r.choice([0, 0, 0, 1])
        s = t[0]
        return f"17/06/09 {s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d} {level} {who}:"

    stage = 0
    while len(out) < n:
        stage += 1
        for part in range(r.randint(3, 6)):
            tid += r.randint(1, 14)
            out.append(f"{head('INFO', 'executor.CoarseGrainedExecutorBackend')} Got assigned task {tid}")
            out.append(f"{head('INFO', 'executor.Executor')} Running task {part}.0 in stage {stage}.0 (TID {tid})")
        b = stage + 8
        out.append(f"{head('INFO', 'broadcast.TorrentBroadcast')} Started reading broadcast variable {b}")
        out.append(f"{head('INFO', 'storage.MemoryStore')} Block broadcast_{b}_piece0 stored as bytes in memory (estimated size {r.uniform(1, 30):.1f} KB, free {r.uniform(100, 900):.1f} KB)")
        out.append(f"{head('INFO', 'broadcast.TorrentBroadcast')} Reading broadcast variable {b} took {r.randint(10, 200)} ms")
        for part in range(r.randint(3, 5)):
            rdd = f"rdd_{r.randint(2, 40)}_{part}"
            if r.random() < 0.5:
                out.append(f"{head('INFO', 'storage.BlockManager')} Found block {rdd} locally")
            else:
                out.append(f"{head('INFO', 'spark.CacheManager')} Partition {rdd} not found, computing it")
                out.append(f"{head('INFO', 'rdd.HadoopRDD')} Input split: hdfs://10.10.34.11:9000/pjhe/logs/2kSOSP.log:{r.randint(0, 40000)}+7292")
            out.append(f"{head('INFO', 'python.PythonRunner')} Times: total = {r.randint(30, 1200)}, boot = {r.randint(-4200, 900)}, init = {r.randint(20, 4200)}, finish = {r.randint(0, 8)}")
            out.append(f"{head('INFO', 'executor.Executor')} Finished task {part}.0 in stage {stage}.0 (TID {tid}). {r.randint(2000, 2800)} bytes result sent to driver")
        if r.random() < 0.05:
            out.append(f"{head('WARN', 'storage.MemoryStore')} Not enough space to cache rdd_{r.randint(2, 40)}_{r.randint(0, 5)} in memory! (computed {r.uniform(1, 300):.1f} MB so far)")
            out.append(f"{head('ERROR', 'executor.Executor')} Exception in task 0.0 in stage {stage}.0 (TID {tid})")
    return out[:n]


GENERATORS: dict[str, Callable[[random.Random, int], list[str]]] = {
    "mac": _mac, "proxifier": _proxifier, "openssh": _openssh, "spark": _spark}


def generate(kind: str, n: int = 2000, seed: int = 19) -> list[str]:
    if kind not in GENERATORS:
        raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    return GENERATORS[kind](random.Random(f"{kind}-{seed}"), n)


def write_all(directory: str | Path, n: int = 2000, seed: int = 19) -> list[Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in KINDS:
        path = directory / FILE_NAMES[kind]
        path.write_text("\n".join(generate(kind, n, seed)) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    for p in write_all(args.out, args.lines, args.seed):
        print(p)
