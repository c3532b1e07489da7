#!/usr/bin/env python3
"""Differential fuzzer: `pos-agent quote` against tools/points_oracle.py (spec §1-§4).

    cargo build -p pos-agent-cli
    python3 tools/points_fuzz.py --valid 5000 --invalid 1000 --seed 1

Generates random bundles and baskets aimed at the edges of the spec (window
boundaries to the second, ties in `best` groups, caps landing exactly, stop rules,
x.5 rounding ties, tiers, birthdays, min_spend met exactly, paid_with_points around
E, limits, several programs), runs the real binary and the oracle, and compares the
quote field by field.  Invalid inputs (each refusal of §1 and §2) must exit 2 with
a message naming the field; exit 101 (panic) or 0 is a failure.

Failing cases are written to --out (default: a temp dir) as case-N.bundle.json /
case-N.basket.json with a .txt describing the difference.  Developer tool only;
not part of CI.
"""
import argparse
import concurrent.futures as cf
import copy
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from decimal import Decimal

sys.dont_write_bytecode = True  # leave no tools/__pycache__ behind
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import points_oracle as O  # noqa: E402

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(HERE, "target", "debug", "pos-agent")

CATS = ["shoes", "food", "toys", "gift_card", "tobacco", None]
SKUS = ["A1", "B2", "C3", "D4", "E5"]
DAYS = O.DAYS
PRICES = ["0", "0.01", "0.5", "0.50", "1", "1.25", "2.5", "3.333", "9.99", "10", "19.99", "25", "59.99", "100"]
QTYS = ["1", "1", "1", "2", "3", "0.5", "0.25", "1.255", "0.001", "2.5", "10"]
RATES = ["0", "1", "1", "1", "0.5", "0.1", "0.01", "2", "1.5", "0.25", "10", "0.125"]
TIERM = ["1", "1.1", "1.25", "1.5", "2", "1.05", "3"]
TIERS = ["silver", "gold", "bronze"]
ROUNDS = ["floor", "ceil", "half_up", "half_even"]


def D(x):
    return Decimal(x)


def fd(x):
    return format(Decimal(x), "f")


def d8(x):
    """Stay inside the engine's documented bound of 8 decimal places (lib.rs `limits`)."""
    return Decimal(x).quantize(Decimal("0.00000001"), rounding="ROUND_FLOOR").normalize()


def fmt_local(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def to_toml(b):
    """Minimal TOML writer for a bundle: every table inline, one program per line."""
    def v(x):
        if isinstance(x, bool):
            return "true" if x else "false"
        if isinstance(x, int):
            return str(x)
        if isinstance(x, str):
            return json.dumps(x)
        if isinstance(x, list):
            return "[" + ", ".join(v(y) for y in x) + "]"
        if isinstance(x, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {v(y)}" for k, y in x.items()) + "}"
        raise TypeError(x)
    out = [f"{json.dumps(k)} = {v(x)}" for k, x in b.items() if k != "programs"]
    if "programs" in b:
        out.append("programs = [")
        out += ["  " + v(p) + "," for p in b["programs"]]
        out.append("]")
    return "\n".join(out) + "\n"


class Gen:
    def __init__(self, rnd):
        self.r = rnd

    def ch(self, xs):
        # a quarter of the numeric choices are replaced by a random decimal of the same
        # flavour (up to 4 places), so that not only the hand-picked values are seen
        x = self.r.choice(xs)
        if isinstance(x, str) and xs is not CATS and xs is not SKUS and x[:1].isdigit() and self.r.random() < 0.25:
            lo = Decimal(1) if xs is TIERM else Decimal(0)
            dp = self.r.randrange(0, 5)
            y = lo + Decimal(self.r.randrange(0, 10 ** self.r.randrange(1, 7))) / (10 ** dp)
            if xs is QTYS and y == 0:
                y = Decimal(1)
            return fd(y)
        return x

    def p(self, prob):
        return self.r.random() < prob

    # ----------------------------------------------------------- basket
    def basket(self, prog_ids, tiers_by_prog):
        r = self.r
        day = dt.datetime(2026, 11, 23) + dt.timedelta(days=r.randrange(0, 60))
        t = day + dt.timedelta(seconds=self.ch([0, 59, 3600 * 10, 3600 * 14 - 1, 3600 * 14,
                                                r.randrange(0, 86400), r.randrange(0, 86400),
                                                3600 * 23 + 3599, 3600 * 12]))
        off = self.ch(["Z", "+01:00", "-05:00", "+14:00", "-12:00", "+05:30", "+00:00"])
        frac = self.r.choice([""] * 8 + [".5", ".999", ".000"])
        k = {"time": fmt_local(t) + frac + off}
        if self.p(0.7):
            k["sale_id"] = f"S-{r.randrange(1000000):06d}"
        nlines = r.randrange(0, 6) if self.p(0.95) else 0
        lines = []
        for i in range(nlines):
            l = {"sku": self.ch(SKUS)}
            c = self.ch(CATS)
            if c is not None:
                l["category"] = c
            l["qty"] = self.ch(QTYS)
            l["unit_price"] = self.ch(PRICES)
            amt = D(l["qty"]) * D(l["unit_price"])
            if self.p(0.3):
                l["discount"] = self.ch(["0", "0.01", "1", "0.5", fd(amt), fd(d8(amt / 2))])
                if D(l["discount"]) > amt:
                    l["discount"] = fd(amt)
            if self.p(0.3):
                l["line"] = 100 + i
            lines.append(l)
        k["lines"] = lines
        if self.p(0.8):
            m = {"id": f"M-{r.randrange(10000)}"}
            if self.p(0.6):
                mon = self.ch([t.month, t.month, (t.month % 12) + 1])
                m["birthday"] = f"19{r.randrange(50, 99)}-{mon:02d}-{r.randrange(1, 29):02d}"
            progs = {}
            for pid in prog_ids:
                if self.p(0.8):
                    tier = self.ch(tiers_by_prog[pid] + ["platinum", None, None])
                    if tier is None and self.p(0.5):
                        progs[pid] = {}
                    else:
                        progs[pid] = {"tier": tier}
            m["programs"] = progs
            k["member"] = m
        if self.p(0.4):
            k["earned_today"] = {pid: self.ch([0, 10, 100, 500, 20000, 30000]) for pid in prog_ids if self.p(0.7)}
        return k, t

    # ----------------------------------------------------------- bundle
    def rule(self, i, t, groups, tiers):
        r = self.r
        rule = {"id": self.r.choice(["r", "R", "a", "b", "x-", "r_", "z", "r"]) + str(i)}
        if self.p(0.8):
            rule["priority"] = self.ch([0, 0, 1, 5, 10, -3, 10])
        if groups and self.p(0.5):
            rule["group"] = self.ch(groups)
        kind = self.ch(["multiplier", "per_unit", "per_item", "fixed"])
        rule["kind"] = kind
        rule["value"] = {"multiplier": ["1", "1.5", "2", "3", "1.25", "1.1"],
                         "per_unit": ["0", "0.5", "1", "2.5", "0.1", "0.05"],
                         "per_item": ["0.5", "1", "3", "0.25", "10"],
                         "fixed": ["0", "1", "2.5", "50", "100", "0.5", "1.5"]}[kind][r.randrange(5)]
        if self.p(0.6):
            m = {}
            if self.p(0.8):
                m["categories"] = r.sample([c for c in CATS if c], r.randrange(0, 3))
            if self.p(0.5):
                m["skus"] = r.sample(SKUS, r.randrange(0, 3))
            rule["match"] = m
        if self.p(0.5):
            w = {}
            sh = [-86400, -3600, -1, 0, 1, 3600, 86400 * 3]
            if self.p(0.5):
                w["from"] = fmt_local(t + dt.timedelta(seconds=self.ch(sh)))
            if self.p(0.5):
                w["to"] = fmt_local(t + dt.timedelta(seconds=self.ch(sh)))
            if "from" in w and "to" in w and w["from"] >= w["to"]:
                del w[self.ch(["from", "to"])]
            if self.p(0.4):
                wd = t.weekday()
                days = set(r.sample(DAYS, r.randrange(0, 4)))
                if self.p(0.5):
                    days.add(DAYS[wd])
                elif self.p(0.5):
                    days.discard(DAYS[wd])
                w["days"] = sorted(days, key=DAYS.index)
            if self.p(0.5):
                hm = t.hour * 60 + t.minute
                cands = [hm - 1, hm, hm + 1, 0, 1439, 600, 840]
                s, e = self.ch(cands), self.ch(cands)
                s, e = max(0, min(s, 1439)), max(0, min(e, 1439))
                if s >= e:
                    s, e = (e, s) if e < s else (s, min(s + 1, 1439))
                if s < e:
                    w["hours"] = {"start": f"{s // 60:02d}:{s % 60:02d}", "end": f"{e // 60:02d}:{e % 60:02d}"}
            rule["when"] = w
        if self.p(0.2):
            rule["min_spend"] = self.ch(["0", "10", "50.00", "0.01", "100"])
        if tiers and self.p(0.3):
            rule["tiers"] = r.sample(tiers, r.randrange(0, len(tiers) + 1))
        if self.p(0.2):
            rule["birthday"] = self.ch([True, False])
        if self.p(0.3):
            rule["cap"] = self.ch([0, 1, 5, 10, 50, 300])
        if self.p(0.3):
            rule["stop"] = self.ch([True, False])
        return rule

    def program(self, pid, t):
        r = self.r
        p = {"id": pid, "currency": self.ch(["EUR", "USD", "CHF"]), "base_rate": self.ch(RATES)}
        if self.p(0.9):
            p["rounding"] = self.ch(ROUNDS)
        if self.p(0.5):
            p["exclude_categories"] = r.sample(["gift_card", "tobacco", "food"], r.randrange(0, 3))
        if self.p(0.5):
            p["earn_on_redeemed"] = self.ch([True, False])
        tiers = r.sample(TIERS, r.randrange(0, 3))
        if tiers or self.p(0.3):
            p["tiers"] = [{"id": x, "multiplier": self.ch(TIERM)} for x in tiers]
        groups = []
        if self.p(0.7):
            gl = []
            for gi in range(r.randrange(1, 3)):
                g = {"id": f"g{gi}", "mode": self.ch(["best", "best", "sum"])}
                if self.p(0.5):
                    g["cap"] = self.ch([0, 1, 10, 50, 100, 500])
                gl.append(g)
                groups.append(g["id"])
            p["groups"] = gl
        p["rules"] = [self.rule(i, t, groups, tiers) for i in range(r.randrange(0, 7) if self.p(0.9) else r.randrange(8, 14))]
        if self.p(0.5):
            lim = {}
            if self.p(0.6):
                lim["sale_cap"] = self.ch([0, 10, 100, 5000])
            if self.p(0.6):
                lim["member_daily_cap"] = self.ch([0, 50, 200, 20000])
            p["limits"] = lim
        if self.p(0.2):
            p["redeem"] = {"points_per_unit": 100, "min_points": 500, "step": 100,
                           "max_share": "0.5", "offline_allowance": 2000}
        return p, tiers

    def case(self):
        r = self.r
        nprog = self.ch([1, 1, 1, 2, 3])
        pids = r.sample(["main", "fuel", "promo", "p-2", "a_b"], nprog)
        k, t = self.basket(pids, {pid: [] for pid in pids})
        progs, tiers_by = [], {}
        for pid in pids:
            p, tiers = self.program(pid, t)
            progs.append(p)
            tiers_by[pid] = tiers
        # re-draw member tiers now that declared tiers are known
        if "member" in k:
            for pid in list(k["member"]["programs"]):
                if self.p(0.8):
                    k["member"]["programs"][pid] = {"tier": self.ch(tiers_by[pid] + ["platinum", None])}
        b = {"version": r.randrange(1, 1000), "programs": progs}
        self.tune(b, k)
        return b, k

    # ----------------------------------------------------------- make numbers land exactly
    def tune(self, b, k):
        r = self.r
        bk = O.parse_basket(k)
        # min_spend exactly the matched amount, paid_with_points around E
        E_all = sum((l["amount"] for l in bk["lines"]), Decimal(0))
        if self.p(0.5):
            k["paid_with_points"] = fd(self.ch([Decimal(0), E_all, E_all - Decimal("0.01"),
                                                 E_all + Decimal("0.01"), d8(E_all / 2), E_all * 2]).max(Decimal(0)))
        for p in b["programs"]:
            excl = set(p.get("exclude_categories", []))
            for rule in p["rules"]:
                if self.p(0.25):
                    m = rule.get("match", {})
                    cs, ss = set(m.get("categories", [])), set(m.get("skus", []))
                    M = sum((l["amount"] for l in bk["lines"]
                             if (l["cat"] is None or l["cat"] not in excl)
                             and ((not cs and not ss) or (l["cat"] in cs) or l["sku"] in ss)), Decimal(0))
                    rule["min_spend"] = fd(self.ch([M, M, M + Decimal("0.01"), max(M - Decimal("0.01"), Decimal(0))]))
        # caps landing exactly
        bundle = O.parse_bundle(b)
        bk = O.parse_basket(k)
        tr = {}
        O.quote(bundle, bk, tr)
        for p in b["programs"]:
            ptr = tr.get(p["id"], {})
            for rule in p["rules"]:
                if rule["id"] in ptr and self.p(0.3):
                    raw = ptr[rule["id"]]["raw"]
                    rule["cap"] = max(0, raw + self.ch([0, 0, -1, 1]))
            for g in p.get("groups", []):
                if self.p(0.4):
                    fin = [ptr[x["id"]].get("final", 0) for x in p["rules"]
                           if x.get("group") == g["id"] and x["id"] in ptr]
                    if fin:
                        g["cap"] = max(0, self.ch([sum(fin), sum(fin) - 1, fin[0], sum(fin) + 1]))
        bundle = O.parse_bundle(b)
        tr = {}
        O.quote(bundle, bk, tr)
        for p in b["programs"]:
            sub = tr.get(p["id"], {}).get("__subtotal__")
            if sub is None:
                continue
            if self.p(0.3):
                p.setdefault("limits", {})["sale_cap"] = max(0, sub + self.ch([0, -1, 1]))
            if self.p(0.3):
                et = self.ch([0, 5, sub, 100000])
                k.setdefault("earned_today", {})[p["id"]] = et
                p.setdefault("limits", {})["member_daily_cap"] = max(0, et + sub + self.ch([0, -1, 1, -10**6]))


# ------------------------------------------------------------------ invalid mutations
def invalid_case(g, b, k):
    """Mutate a valid case so that exactly one refusal of §1/§2 applies.
    Returns (bundle, basket, tokens that the message must name, description)."""
    r = g.r
    b, k = copy.deepcopy(b), copy.deepcopy(k)
    progs = b["programs"]
    p = r.choice(progs)
    rules = p["rules"]
    if not rules:
        rules.append({"id": "r0", "kind": "fixed", "value": "1"})
    rule = r.choice(rules)
    P, R = p["id"], rule["id"]
    muts = []

    def m(fn, tokens, desc):
        muts.append((fn, tokens, desc))

    m(lambda: progs.append(copy.deepcopy(p)), [P], "program id repeats")
    m(lambda: p.__setitem__("id", r.choice(["Main", "", "a b", "x" * 65, "é"])), ["id"], "bad program id")
    m(lambda: rules.append(dict(copy.deepcopy(rule))), [P, R], "rule id repeats")
    m(lambda: p.__setitem__("tiers", [{"id": "t", "multiplier": "1"}, {"id": "t", "multiplier": "2"}]),
      [P, "t"], "tier id repeats")
    m(lambda: p.__setitem__("groups", (p.get("groups") or []) + [{"id": "gg", "mode": "sum"}, {"id": "gg", "mode": "best"}]),
      [P, "gg"], "group id repeats")
    m(lambda: rule.__setitem__("group", "nogroup"), [P, R, "group"], "undeclared group")
    m(lambda: rule.__setitem__("tiers", ["notier"]), [P, R, "tier"], "undeclared tier")
    m(lambda: p.__setitem__("base_rate", r.choice(["abc", "-1", "-0.01", "", "1.2.3"])), [P, "base_rate"], "bad base_rate")
    m(lambda: p.__setitem__("tiers", [{"id": "t", "multiplier": r.choice(["0.99", "0", "-1", "x"])}]),
      [P, "multiplier"], "bad tier multiplier")
    m(lambda: rule.update(kind="multiplier", value=r.choice(["0.99", "0", "-2", "zz"])), [P, R, "value"], "multiplier value < 1")
    m(lambda: rule.update(kind=r.choice(["per_unit", "per_item", "fixed"]), value=r.choice(["-0.01", "-1", "x"])),
      [P, R, "value"], "negative value")
    m(lambda: rule.__setitem__("min_spend", r.choice(["x", "", "1,5"])), [P, R, "min_spend"], "min_spend not decimal")
    m(lambda: rule.__setitem__("cap", r.choice([-1, -100])), [P, R, "cap"], "rule cap < 0")
    m(lambda: p.__setitem__("groups", [{"id": "gneg", "mode": "sum", "cap": -1}]), [P, "cap"], "group cap < 0")
    m(lambda: rule.__setitem__("when", r.choice([{"from": "2026-11-28T10:00:00", "to": "2026-11-28T10:00:00"},
                                                  {"from": "2026-11-28T10:00:01", "to": "2026-11-28T10:00:00"}])),
      [P, R, "from"], "from >= to")
    m(lambda: rule.__setitem__("when", {"hours": r.choice([{"start": "10:00", "end": "10:00"},
                                                            {"start": "14:00", "end": "10:00"}])}),
      [P, R, "hours"], "start >= end")
    m(lambda: rule.__setitem__("when", {"hours": r.choice([{"start": "10:00", "end": "24:00"},
                                                            {"start": "10:60", "end": "11:00"},
                                                            {"start": "9:00", "end": "11:00"}])}),
      [P, R, "hours"], "bad HH:MM")
    m(lambda: rule.__setitem__("when", {"from": r.choice(["2026-13-01T00:00:00", "2026-11-28", "2026-11-28T10:00:00Z",
                                                          "2026-02-30T00:00:00"])}), [P, R, "from"], "bad from")
    m(lambda: rule.__setitem__("when", {"days": [r.choice(["Mon", "monday", "xyz", ""])]}), [P, R, "days"], "unknown day")
    m(lambda: rule.__setitem__("kind", r.choice(["mult", "Fixed", "", "bonus"])), [P, R, "kind"], "unknown kind")
    m(lambda: p.__setitem__("groups", [{"id": "gm", "mode": r.choice(["max", "Best", ""])}]), [P, "mode"], "unknown mode")
    m(lambda: p.__setitem__("groups", [{"id": "gm"}]), [P, "mode"], "missing mode")
    m(lambda: p.__setitem__("rounding", r.choice(["round", "Floor", "half_down", ""])), [P, "rounding"], "unknown rounding")
    m(lambda: p.__setitem__("extra_field", 1), [P, "extra_field"], "unknown field in program")
    m(lambda: rule.__setitem__("extra_rule", 1), [P, R, "extra_rule"], "unknown field in rule")
    m(lambda: rule.__setitem__("match", {"category": ["x"]}), [P, R, "category"], "unknown field in match")
    m(lambda: rule.__setitem__("when", {"day": ["mon"]}), [P, R, "day"], "unknown field in when")
    m(lambda: rule.__setitem__("when", {"hours": {"start": "10:00", "end": "11:00", "tz": "x"}}), [P, R, "tz"],
      "unknown field in hours")
    m(lambda: p.__setitem__("limits", {"sale_limit": 5}), [P, "sale_limit"], "unknown field in limits")
    m(lambda: p.__setitem__("tiers", [{"id": "t", "multiplier": "1", "mult": "2"}]), [P, "mult"], "unknown field in tier")
    m(lambda: p.__setitem__("groups", [{"id": "g", "mode": "sum", "limit": 2}]), [P, "limit"], "unknown field in group")
    m(lambda: b.__setitem__("extra_top", 1), ["extra_top"], "unknown top-level field")
    m(lambda: b.pop("version"), ["version"], "missing version")
    m(lambda: rule.pop("kind"), [P, R, "kind"], "missing kind")
    m(lambda: rule.pop("value"), [P, R, "value"], "missing value")
    m(lambda: p.pop("base_rate"), [P, "base_rate"], "missing base_rate")
    m(lambda: p.pop("currency"), [P, "currency"], "missing currency")
    # basket (§2)
    if not k["lines"]:
        k["lines"].append({"sku": "A1", "qty": "1", "unit_price": "1"})
    line = r.choice(k["lines"])
    m(lambda: line.__setitem__("qty", r.choice(["0", "-1", "0.000", "x"])), ["qty"], "qty <= 0")
    m(lambda: line.__setitem__("unit_price", r.choice(["-0.01", "-5", "abc"])), ["unit_price"], "unit_price < 0")
    m(lambda: line.__setitem__("discount", r.choice(["-0.01", "-1", "x"])), ["discount"], "discount < 0")
    m(lambda: line.update(qty="1", unit_price="1", discount="1.01"), ["line"], "amount < 0")
    m(lambda: line.pop("sku"), ["sku"], "missing sku")
    m(lambda: k["lines"].extend([{"line": 7, "sku": "A1", "qty": "1", "unit_price": "1"},
                                 {"line": 7, "sku": "B2", "qty": "1", "unit_price": "1"}]), ["line"], "line repeats")
    m(lambda: k.__setitem__("lines", [{"line": 2, "sku": "A1", "qty": "1", "unit_price": "1"},
                                      {"sku": "B2", "qty": "1", "unit_price": "1"}]), ["line"], "default line repeats")
    m(lambda: k.__setitem__("time", r.choice(["2026-11-28T11:05:00", "2026-11-28 11:05", "yesterday",
                                              "2026-13-28T11:05:00Z", "2026-11-28T25:05:00+01:00"])), ["time"], "bad time")
    m(lambda: k.pop("time"), ["time"], "missing time")
    m(lambda: k.__setitem__("paid_with_points", r.choice(["abc", "", "1.2.3"])), ["paid_with_points"], "bad paid_with_points")
    m(lambda: k.__setitem__("member", {"id": "M", "birthday": r.choice(["1990-13-01", "1990-02-30", "03/11/1990", "x"]),
                                       "programs": {}}), ["birthday"], "bad birthday")
    if r.random() < 0.3:
        return scramble(r, b, k)
    fn, tokens, desc = r.choice(muts)
    fn()
    return b, k, tokens, desc


def _paths(x, path=()):
    if isinstance(x, dict):
        for key, y in x.items():
            yield path + (key,), y
            yield from _paths(y, path + (key,))
    elif isinstance(x, list):
        for i, y in enumerate(x):
            yield path + (i,), y
            yield from _paths(y, path + (i,))


def scramble(r, b, k):
    """Replace one value, anywhere in the bundle or the basket, by a value of the wrong type."""
    doc, name = r.choice([(b, "bundle"), (k, "basket")])
    paths = [(p, v) for p, v in _paths(doc) if isinstance(p[-1], str) and v is not None
             and "redeem" not in p
             and not (name == "basket" and p[:2] == ("member", "programs") and len(p) == 3)
             and p[-1] not in ("earned_today",) and not (len(p) >= 2 and p[-2] == "earned_today")]
    if not paths:
        return b, k, [], "no scramble"
    path, v = r.choice(paths)
    if isinstance(v, bool):
        new = r.choice(["true", 1, [], {}])
    elif isinstance(v, int):
        new = r.choice(["1", 1.5, True, [], {}])
    elif isinstance(v, str):
        new = r.choice([5, 1.5, True, [], {}])
    elif isinstance(v, list):
        new = r.choice([{}, "x", 3, [{"x": 1}] if v and isinstance(v[0], str) else [7]])
    else:
        new = r.choice([[], "x", 3])
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return b, k, [path[-1]], f"wrong type at {name} {'.'.join(map(str, path))} = {json.dumps(new)}"


# ------------------------------------------------------------------ running
def run_engine(bpath, kpath):
    p = subprocess.run([BIN, "quote", "--rules", bpath, "--basket", kpath], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def diff(a, b, path="$"):
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [x for x in b if x not in a]:
            if key not in a or key not in b:
                out.append(f"{path}.{key}: expected {a.get(key, '<absent>')!r} got {b.get(key, '<absent>')!r}")
            else:
                out += diff(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff(x, y, f"{path}[{i}]")
    elif a != b or type(a) is not type(b):
        out.append(f"{path}: expected {json.dumps(a)} got {json.dumps(b)}")
    return out


def check_valid(i, b, k, tmp, out):
    ext = "toml" if i % 5 == 4 else "json"
    bp, kp = os.path.join(tmp, f"v{i}.bundle.{ext}"), os.path.join(tmp, f"v{i}.basket.json")
    open(bp, "w").write(to_toml(b) if ext == "toml" else json.dumps(b))
    json.dump(k, open(kp, "w"))
    orc, oobj, omsg = O.run(bp, kp)
    rc, so, se = run_engine(bp, kp)
    problems = []
    if orc != 0:
        problems.append(f"generator bug: oracle refused: {omsg}")
    elif rc == 2 and "exceeds the exact range" in se:
        # the engine refuses a quote whose exact arithmetic needs more than rust_decimal's
        # 28 digits; the spec names no such limit: reported, but kept apart
        problems.append(f"engine refuses (exact range): {se.strip()[:300]}")
    elif rc != 0:
        problems.append(f"engine exit {rc}: {se.strip()[:300]}")
    else:
        try:
            eobj = json.loads(so)
        except ValueError:
            problems.append(f"engine output not JSON: {so[:200]}")
        else:
            problems += diff(oobj, eobj)
    return save(i, "valid", b, k, problems, out, bp, kp)


def check_invalid(i, b, k, tokens, desc, tmp, out):
    bp, kp = os.path.join(tmp, f"i{i}.bundle.json"), os.path.join(tmp, f"i{i}.basket.json")
    json.dump(b, open(bp, "w")), json.dump(k, open(kp, "w"))
    orc, _, omsg = O.run(bp, kp)
    rc, so, se = run_engine(bp, kp)
    problems = []
    if orc != 2:
        problems.append(f"generator bug: oracle accepted mutation {desc}")
    elif rc != 2:
        problems.append(f"[{desc}] engine exit {rc} (want 2): {(se or so).strip()[:300]}")
    else:
        missing = [t for t in tokens if t.lower() not in se.lower()]
        if missing:
            problems.append(f"[{desc}] message does not name {missing}: {se.strip()[:300]}")
    return save(i, "invalid", b, k, problems, out, bp, kp)


def save(i, kind, b, k, problems, out, bp, kp):
    if problems:
        base = os.path.join(out, f"{kind}-{i}")
        json.dump(b, open(base + ".bundle.json", "w"), indent=1)
        json.dump(k, open(base + ".basket.json", "w"), indent=1)
        open(base + ".txt", "w").write("\n".join(problems) + "\n")
    os.remove(bp), os.remove(kp)
    return kind, i, problems


def main():
    global BIN
    ap = argparse.ArgumentParser(description="differential fuzzer for pos-agent quote (spec points.md §1-§4)")
    ap.add_argument("--valid", type=int, default=5000)
    ap.add_argument("--invalid", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 4)
    ap.add_argument("--out", default=None, help="directory for failing cases")
    ap.add_argument("--bin", default=BIN)
    a = ap.parse_args()
    BIN = a.bin
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} missing: run `cargo build -p pos-agent-cli` first")
    out = a.out or tempfile.mkdtemp(prefix="points-fuzz-fail-")
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="points-fuzz-")
    # private copy: the target dir is shared, a concurrent rebuild must not swap the binary mid-run
    shutil.copy2(BIN, os.path.join(tmp, "pos-agent"))
    BIN = os.path.join(tmp, "pos-agent")
    g = Gen(random.Random(a.seed))
    jobs = []
    with cf.ThreadPoolExecutor(a.jobs) as ex:
        for i in range(a.valid):
            b, k = g.case()
            jobs.append(ex.submit(check_valid, i, b, k, tmp, out))
        for i in range(a.invalid):
            b, k = g.case()
            b2, k2, tokens, desc = invalid_case(g, b, k)
            jobs.append(ex.submit(check_invalid, i, b2, k2, tokens, desc, tmp, out))
        fails = {"valid": 0, "invalid": 0}
        kinds = {}
        for f in cf.as_completed(jobs):
            kind, i, problems = f.result()
            if problems:
                fails[kind] += 1
                for p in problems:
                    key = p.split(":")[0] if kind == "valid" else p.split("]")[0] + "]"
                    kinds.setdefault((kind, key), []).append(i)
    print(f"valid: {a.valid} cases, {fails['valid']} disagreements; "
          f"invalid: {a.invalid} cases, {fails['invalid']} failures; seed {a.seed}")
    for (kind, key), ids in sorted(kinds.items(), key=lambda x: -len(x[1])):
        print(f"  {len(ids):5d}  {kind}: {key}   e.g. {out}/{kind}-{ids[0]}.txt")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"failing cases in {out}")
    sys.exit(1 if any(fails.values()) else 0)


if __name__ == "__main__":
    main()
