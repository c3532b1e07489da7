#!/usr/bin/env python3
"""Independent oracle for `pos-agent decode barcode DATA` (GS1 rules only).

Written from the GS1 General Specifications, without reading the Rust decoder.
predict(data) -> dict with:
  valid: bool | None          (None = oracle abstains)
  symbology: str | None       (only when unambiguous)
  gtin: str | None            (14 digits, only when valid)
  ais: dict | None            (GS1 element strings, only when valid)
  why: str                    (reason, for invalid / abstain)
"""
import calendar

GS = "\x1d"

def check_digit(body):
    """GS1 mod-10: weights 3,1,3,... from the rightmost body digit."""
    s = 0
    for i, ch in enumerate(reversed(body)):
        s += int(ch) * (3 if i % 2 == 0 else 1)
    return str((10 - s % 10) % 10)

def has_valid_cd(num):
    return num.isdigit() and len(num) >= 2 and check_digit(num[:-1]) == num[-1]

def upce_to_upca(upce8):
    """8-digit UPC-E (N X1..X6 C) -> 12-digit UPC-A, or None if N not 0/1."""
    if len(upce8) != 8 or not upce8.isdigit() or upce8[0] not in "01":
        return None
    n, x, c = upce8[0], upce8[1:7], upce8[7]
    x1, x2, x3, x4, x5, x6 = x
    if x6 in "012":
        body = n + x1 + x2 + x6 + "0000" + x3 + x4 + x5
    elif x6 == "3":
        body = n + x1 + x2 + x3 + "00000" + x4 + x5
    elif x6 == "4":
        body = n + x1 + x2 + x3 + x4 + "00000" + x5
    else:
        body = n + x1 + x2 + x3 + x4 + x5 + "0000" + x6
    return body + c

# ---- payment-card heuristic (only to classify the CLI's deliberate refusal) ----
def luhn_ok(num):
    if not num.isdigit() or not 12 <= len(num) <= 19:
        return False
    s = 0
    for i, ch in enumerate(reversed(num)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        s += d
    return s % 10 == 0

# ---- GS1 AI table (subset named by the spec) ----
CSET82 = set("!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")

def ai_def(s, i):
    """Return (ai, kind, length) for the AI starting at s[i], or None if unknown.
    kind: 'n14cd','n18cd','date','n6','x20','n15'."""
    two = s[i:i + 2]
    if two in ("01", "02"):
        return two, "ncd", 14
    if two == "00":
        return two, "ncd", 18
    if two in ("11", "12", "13", "15", "16", "17"):
        return two, "date", 6
    if two in ("10", "21"):
        return two, "x", 20
    four = s[i:i + 4]
    if len(four) == 4 and four[:3] == "310" and four[3] in "012345":
        return four, "n", 6
    if len(four) == 4 and four[:3] == "392" and four[3].isdigit():
        return four, "nvar", 15
    if four == "8018":
        return four, "ncd", 18
    return None

PREDEFINED = {"00", "01", "02", "03", "04", "11", "12", "13", "14", "15",
              "16", "17", "18", "19", "20", "31", "32", "33", "34", "35", "36", "41"}
FIXED = ("ncd", "date", "n")

def valid_date(v, yy_now=26):
    if len(v) != 6 or not v.isdigit():
        return "not 6 digits"
    yy, mm, dd = int(v[:2]), int(v[2:4]), int(v[4:])
    if not 1 <= mm <= 12:
        return "month"
    if dd == 0:
        return None
    # GS1 GenSpecs 7.12 century determination around the current year
    diff = yy - yy_now
    century = 2000
    if diff > 50:
        century = 1900
    elif diff < -50:
        century = 2100
    if dd > calendar.monthrange(century + yy, mm)[1]:
        return "day"
    return None

def parse_gs1(body):
    """Returns (ais dict, None) or (None, reason). Lenient on: leading GS,
    GS after fixed-length fields, a trailing GS. Unknown AI -> ('?', reason)."""
    s = body
    i = 0
    if s.startswith(GS):
        i = 1
    ais = {}
    if i >= len(s):
        return None, "empty"
    while i < len(s):
        d = ai_def(s, i)
        if d is None:
            if s[i:i + 2] == "14" or (s[i:i + 3] == "310" and s[i + 3:i + 4] in tuple("6789")):
                return None, "AI %s not assigned by GS1" % s[i:i + 4]
            return "?", "unknown AI at %d" % i
        ai, kind, ln = d
        i += len(ai)
        if kind in FIXED:
            v = s[i:i + ln]
            if len(v) != ln or GS in v:
                return None, "AI %s short" % ai
            if not v.isdigit():
                return None, "AI %s non-numeric" % ai
            if kind == "ncd" and not has_valid_cd(v):
                return None, "AI %s check digit" % ai
            if kind == "date":
                r = valid_date(v)
                if r:
                    return None, "AI %s bad date (%s)" % (ai, r)
            i += ln
            if i < len(s) and s[i] == GS:
                i += 1
            elif i < len(s) and ai[:2] not in PREDEFINED:
                # GS1 GenSpecs 7.8.5: only AIs whose first two digits are in the
                # predefined-length table may be followed by another AI without FNC1
                return None, "AI %s fixed length but not predefined: needs GS" % ai
        else:
            j = s.find(GS, i)
            end = len(s) if j < 0 else j
            v = s[i:end]
            if len(v) == 0:
                return None, "AI %s empty" % ai
            if len(v) > ln:
                return None, "AI %s too long" % ai
            if kind == "nvar" and not v.isdigit():
                return None, "AI %s non-numeric" % ai
            if kind == "x" and not set(v) <= CSET82:
                return None, "AI %s bad char" % ai
            i = end + (1 if j >= 0 else 0)
        if ai in ais and ais[ai] != v:
            return None, "AI %s repeated with different value" % ai
        ais[ai] = v
    if "01" in ais and "02" in ais:
        # GS1 GenSpecs 4.13 invalid AI pairs: (01) and (02) never together
        return None, "invalid AI pair 01+02"
    return ais, None

GS1_AIM = {"]C1": "gs1_128", "]d2": "gs1_datamatrix", "]Q3": "gs1_qr", "]e0": "gs1_databar"}

def predict(data):
    data = data.replace("<GS>", GS)
    aim = None
    body = data
    if len(data) >= 3 and data[0] == "]":
        aim, body = data[:3], data[3:]
    out = {"valid": None, "symbology": None, "gtin": None, "ais": None, "why": "", "aim": aim}
    if aim in GS1_AIM:
        out["symbology"] = GS1_AIM[aim]
        ais, why = parse_gs1(body)
        if ais == "?":
            out["why"] = why
            return out  # abstain: AI outside our table
        if ais is None:
            out["valid"] = False
            out["why"] = why
            return out
        out["valid"] = True
        out["ais"] = ais
        out["gtin"] = ais.get("01")
        return out
    digits = body.isdigit()
    if aim == "]E4":
        out["symbology"] = "ean8"
        if digits and len(body) == 8 and has_valid_cd(body):
            out["valid"], out["gtin"] = True, body.zfill(14)
        else:
            out["valid"], out["why"] = False, "ean8"
        return out
    if aim == "]E0":
        if digits and len(body) == 13:
            ok = has_valid_cd(body)
            out["valid"] = ok
            out["gtin"] = body.zfill(14) if ok else None
            out["why"] = "" if ok else "ean13 cd"
            return out
        if digits and len(body) == 8:
            out["symbology"] = "upce"
            a = upce_to_upca(body)
            if a and has_valid_cd(a):
                out["valid"], out["gtin"] = True, a.zfill(14)
            else:
                out["valid"], out["why"] = False, "upce"
            return out
        out["valid"], out["why"] = False, "]E0 length"
        return out
    if aim is not None:
        out["why"] = "aim not modelled"
        return out
    if not digits:
        out["why"] = "non-numeric, no AIM"
        return out
    n = len(body)
    if n in (12, 13, 14):
        out["symbology"] = {12: "upca", 13: "ean13", 14: None}[n]
        ok = has_valid_cd(body)
        out["valid"] = ok
        out["gtin"] = body.zfill(14) if ok else None
        out["why"] = "" if ok else "cd"
        return out
    if n == 8:
        e8 = has_valid_cd(body)
        a = upce_to_upca(body)
        ue = bool(a and has_valid_cd(a))
        if e8 and ue:
            out["why"] = "8 digits valid as both EAN-8 and UPC-E"
            return out
        if e8:
            out["valid"], out["gtin"], out["symbology"] = True, body.zfill(14), "ean8"
        elif ue:
            out["valid"], out["gtin"], out["symbology"] = True, a.zfill(14), "upce"
        else:
            out["valid"], out["why"] = False, "8 digits, neither EAN-8 nor UPC-E"
        return out
    out["why"] = "length not modelled"
    return out
