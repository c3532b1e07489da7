#!/usr/bin/env python3
"""Differential fuzz: tools/decode_oracle.py vs `pos-agent decode barcode DATA`.

Usage: PYTHONDONTWRITEBYTECODE=1 python3 -B tools/decode_fuzz.py [N] [SEED]
Synthetic data only. Payment-card refusals are counted separately.
"""
import json, os, random, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from collections import Counter, defaultdict

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode_oracle as O

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "debug", "pos-agent")
GSL = "<GS>"

def rd(r, n):
    return "".join(r.choice("0123456789") for _ in range(n))

def with_cd(body, r, bad=False):
    c = O.check_digit(body)
    if bad:
        c = str((int(c) + r.randint(1, 9)) % 10)
    return body + c

def gtin_case(r):
    bad = r.random() < 0.3
    kind = r.choice(["ean13", "ean8", "upca", "gtin14", "upce", "upce_aim", "ean13_aim", "ean8_aim", "upca_aim"])
    if kind in ("ean13", "ean13_aim"):
        s = with_cd(rd(r, 12), r, bad)
        return ("]E0" + s) if kind.endswith("aim") else s
    if kind in ("ean8", "ean8_aim"):
        s = with_cd(rd(r, 7), r, bad)
        return ("]E4" + s) if kind.endswith("aim") else s
    if kind in ("upca", "upca_aim"):
        s = with_cd(rd(r, 11), r, bad)
        return ("]E00" + s) if kind.endswith("aim") else s
    if kind == "gtin14":
        return with_cd(rd(r, 13), r, bad)
    # UPC-E: every last-digit case, number system 0/1 (sometimes 2-9)
    ns = r.choice("01") if r.random() < 0.9 else r.choice("23456789")
    x = rd(r, 5) + r.choice("0123456789")
    a = O.upce_to_upca(ns + x + "0")
    cd = O.check_digit(a[:-1]) if a else r.choice("0123456789")
    if bad:
        cd = str((int(cd) + r.randint(1, 9)) % 10)
    s = ns + x + cd
    return ("]E0" + s) if kind == "upce_aim" else s

def date(r, bad=False):
    yy = rd(r, 2)
    if bad:
        k = r.choice(["m13", "m00", "d32", "feb30", "apr31", "feb29nl", "nondigit"])
        return yy + {"m13": "1301", "m00": "0015", "d32": "0132", "feb30": "0230",
                     "apr31": "0431", "feb29nl": "0229", "nondigit": "0A01"}[k] if k != "feb29nl" \
            else r.choice(["25", "27", "99", "01"]) + "0229"
    mm = "%02d" % r.randint(1, 12)
    dd = r.choice(["00", "%02d" % r.randint(1, 28), "29", "30", "31"])
    return yy + mm + dd

def xval(r, n):
    return "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-./abcxyz") for _ in range(n))

def element(r, bad):
    """Return (text, is_variable)."""
    k = r.choice(["00", "01", "02", "1x", "10", "21", "310", "392", "8018"])
    if k in ("00", "8018"):
        v = with_cd(rd(r, 17), r, bad and r.random() < 0.5)
        if bad and r.random() < 0.3:
            v = v[:-r.randint(1, 3)]
        return k + v, False
    if k in ("01", "02"):
        v = with_cd(rd(r, 13), r, bad and r.random() < 0.5)
        if bad and r.random() < 0.3:
            v = v[:r.randint(10, 13)]
        return k + v, False
    if k == "1x":
        ai = r.choice(["11", "12", "13", "15", "16", "17"])
        v = date(r, bad and r.random() < 0.6)
        if bad and r.random() < 0.2:
            v = v[:r.randint(2, 5)]
        return ai + v, False
    if k in ("10", "21"):
        n = r.randint(1, 20)
        if bad and r.random() < 0.5:
            n = r.choice([0, 21, 22, 25])
        v = xval(r, n)
        if bad and r.random() < 0.2:
            v = v[:1] + r.choice([" ", "#", "$", "@"]) + v[2:]
        return k + v, True
    if k == "310":
        n = r.choice("012345") if not (bad and r.random() < 0.3) else r.choice("6789")
        v = rd(r, 6)
        if bad and r.random() < 0.3:
            v = rd(r, r.choice([4, 5]))
        return "310" + n + v, False
    if k == "392":
        n = r.choice("0123456789")
        ln = r.randint(1, 15) if not (bad and r.random() < 0.5) else r.choice([0, 16, 18])
        return "392" + n + rd(r, ln), True
    raise AssertionError

def gs1_case(r):
    aim = r.choice(["]C1", "]d2", "]Q3", "]e0"])
    bad = r.random() < 0.35
    parts = [element(r, bad and r.random() < 0.6) for _ in range(r.randint(1, 4))]
    s = ""
    for i, (t, var) in enumerate(parts):
        s += t
        last = i == len(parts) - 1
        if not last:
            if var:
                if not (bad and r.random() < 0.15):  # sometimes drop a needed GS
                    s += GSL
            elif r.random() < 0.15:
                s += GSL  # optional GS after fixed field
        elif r.random() < 0.15:
            s += GSL  # trailing GS
    if r.random() < 0.05:
        s = GSL + s  # leading FNC1-as-GS
    return aim + s

def edge_cases():
    e = []
    base = "4006381333931"
    e += [base, "]E0" + base, "0" + base, "]E00" + base[:-1] + "2"]
    # every UPC-E last digit, both number systems
    for ns in "01":
        for x6 in "0123456789":
            body = ns + "12345"[:5] + x6
            a = O.upce_to_upca(body + "0")
            s = body + O.check_digit(a[:-1])
            e += [s, "]E0" + s]
    e += ["]E4" + with_cd("1234567", random.Random(1)), "]E40123456"]
    g = with_cd("0123456789012", random.Random(1))
    e += ["]C101" + g, "]C101" + g + GSL, "]C101" + g + "17251300", "]C101" + g + "17250229",
          "]C101" + g + "17240229", "]C101" + g + "17250100", "]C101" + g + "14250101",
          "]C110" + "A" * 20, "]C110" + "A" * 21, "]C110" + GSL + "21X", "]C110AB" + GSL + GSL + "21X",
          "]C121A B", "]C101" + g + "01" + g, "]C101" + g + "01" + g[:-1] + str((int(g[-1]) + 1) % 10),
          "]C18018" + with_cd("12345678901234567", random.Random(1)) + "10ABC",
          "]C13103123456", "]C13106123456", "]C1392" + "1" * 15, "]C13920" + "1" * 16, "]C1",
          "]C1" + GSL, "]C10112345", "]C101" + g + GSL + GSL]
    e += ["]C117%02d0229" % yy for yy in range(100)]  # leap years across the century window
    e += ["]C18018" + with_cd("12345678901234567", random.Random(1)) + GSL + "10ABC",
          "]C101" + g + "02" + with_cd("0950600013435", random.Random(1))]
    return e

def run(data):
    p = subprocess.run([BIN, "decode", "barcode", data], capture_output=True, text=True)
    try:
        return json.loads(p.stdout), p.returncode
    except Exception:
        return {"_raw": p.stdout, "_err": p.stderr}, p.returncode

def compare(data, exp, act):
    diffs = []
    if exp["valid"] is None:
        return None
    if "valid" not in act:
        return ["no 'valid' in output: %r" % act]
    if act["valid"] != exp["valid"]:
        diffs.append("valid: expected %s (%s), got %s (%s)" % (exp["valid"], exp["why"], act["valid"], act.get("error")))
        return diffs
    if exp["symbology"] and act.get("symbology") != exp["symbology"]:
        diffs.append("symbology: expected %s got %s" % (exp["symbology"], act.get("symbology")))
    if exp["valid"]:
        if exp["gtin"] and act.get("gtin") != exp["gtin"]:
            diffs.append("gtin: expected %s got %s" % (exp["gtin"], act.get("gtin")))
        if exp["ais"] is not None and act.get("ais") != exp["ais"]:
            diffs.append("ais: expected %s got %s" % (exp["ais"], act.get("ais")))
    return diffs or None

def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 6000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 20261125
    r = random.Random(seed)
    cases = edge_cases()
    while len(cases) < n:
        cases.append(gtin_case(r) if r.random() < 0.45 else gs1_case(r))
    with ThreadPoolExecutor(max_workers=8) as ex:
        results = list(ex.map(run, cases))
    stats = Counter()
    buckets = defaultdict(list)
    for data, (act, rc) in zip(cases, results):
        exp = O.predict(data)
        stats["run"] += 1
        if act.get("payment_card"):
            stats["payment_card"] += 1
            if exp["valid"]:
                buckets["valid GTIN refused as payment card"].append((data, "expected valid gtin %s" % exp["gtin"]))
            continue
        if rc != 0:
            stats["nonzero_rc"] += 1
        if exp["valid"] is None:
            stats["abstain"] += 1
            continue
        d = compare(data, exp, act)
        if d:
            stats["disagree"] += 1
            key = d[0].split(":")[0] + " | " + (exp["why"] or "valid")
            buckets[key].append((data, "; ".join(d) + " || actual=" + json.dumps(act)))
        else:
            stats["agree"] += 1
    print("stats:", dict(stats))
    for k, v in sorted(buckets.items(), key=lambda kv: -len(kv[1])):
        print("\n== %s  (%d)" % (k, len(v)))
        for data, msg in sorted(v, key=lambda x: len(x[0]))[:4]:
            print("  %r\n    %s" % (data, msg))
    return 1 if stats["disagree"] else 0

if __name__ == "__main__":
    sys.exit(main())
