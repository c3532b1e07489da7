//! `pos-central import-orders`: a channel's orders in a file (JSON Lines or
//! CSV), read and checked whole before any is recorded (`docs/channels.md`
//! §5).
//!
//! - **JSON Lines** (`.jsonl`, `.ndjson`): one order per line, exactly the
//!   body of `POST /v1/channel/orders` (redemptions included). Blank lines
//!   are skipped.
//! - **CSV** (`.csv`): a header naming the columns, in any order, then one
//!   row per order line: `order_id`, `member`, `time`, `sku`, `qty`,
//!   `unit_price` (required) and `category`, `discount`, `line`. The rows of
//!   one order are consecutive and agree on `member` and `time`. CSV
//!   carries no redemptions: points are spent at a checkout, online.
//!
//! Every problem names its line (and for CSV its column; for JSON Lines the
//! field), and all of them are listed at once. What can only be known
//! against the database (an unknown member, an id reused with other
//! content) is found when the orders are recorded, in file order; the file
//! can then be fixed and sent again, since orders already recorded answer
//! with their stored answer and are counted as such.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::apply::channel::{ORDER_LINES_MAX, OrderRequest};
use crate::error::CentralError;

/// Most orders of one file.
pub const FILE_ORDERS_MAX: usize = 1_000_000;
/// Largest file read.
pub const FILE_BYTES_MAX: u64 = 1 << 30;
/// Most problems listed before the rest are only counted.
const PROBLEMS_LISTED_MAX: usize = 50;

/// How the file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrdersFormat {
    JsonLines,
    Csv,
}

impl OrdersFormat {
    /// By the file's extension.
    pub fn from_path(path: &std::path::Path) -> Option<OrdersFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Some(OrdersFormat::JsonLines),
            "csv" => Some(OrdersFormat::Csv),
            _ => None,
        }
    }
}

/// An order and the line of the file it starts on.
#[derive(Clone, Debug)]
pub struct FileOrder {
    pub line: usize,
    pub order: OrderRequest,
}

/// Every order of `text`, checked as far as the file alone can be: the
/// request's shape, ids, the time's syntax and every line's fields under
/// the points spec's basket rules. `Invalid` listing every problem.
pub fn parse(text: &str, format: OrdersFormat) -> Result<Vec<FileOrder>, CentralError> {
    let mut problems = Vec::new();
    let orders = match format {
        OrdersFormat::JsonLines => json_lines(text, &mut problems),
        OrdersFormat::Csv => csv_rows(text, &mut problems),
    };
    if orders.len() > FILE_ORDERS_MAX {
        problems.push(format!("at most {FILE_ORDERS_MAX} orders in one file"));
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &orders {
        if let Some(first) = seen.insert(&o.order.order_id, o.line) {
            problems.push(format!(
                "line {}: order_id {:?} again (first on line {first})",
                o.line, o.order.order_id
            ));
        }
        if let Err(e) = check_order(&o.order) {
            problems.push(format!("line {}: {e}", o.line));
        }
    }
    if problems.is_empty() {
        return Ok(orders);
    }
    let total = problems.len();
    problems.truncate(PROBLEMS_LISTED_MAX);
    let more = total - problems.len();
    let mut message = format!(
        "{total} problem(s), nothing was recorded:\n  {}",
        problems.join("\n  ")
    );
    if more > 0 {
        message.push_str(&format!("\n  ... and {more} more"));
    }
    Err(CentralError::Invalid(message))
}

/// What the order's own fields say, apart from any database: ids and
/// lines as [`crate::apply::channel`] checks them, lines under the basket
/// rules of points spec §2.
fn check_order(order: &OrderRequest) -> Result<(), String> {
    crate::apply::channel::check_request_fields(order).map_err(|e| e.to_string())?;
    if order.lines.is_empty() || order.lines.len() > ORDER_LINES_MAX {
        return Err(format!("lines: give 1 to {ORDER_LINES_MAX} lines"));
    }
    let basket = json!({"sale_id": order.order_id, "time": order.time, "lines": order.lines});
    pos_points::Basket::parse_json(&basket.to_string())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn json_lines(text: &str, problems: &mut Vec<String>) -> Vec<FileOrder> {
    let mut orders = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<OrderRequest>(line) {
            Ok(order) => orders.push(FileOrder {
                line: number,
                order,
            }),
            Err(e) => problems.push(format!("line {number}, column {}: {e}", e.column())),
        }
    }
    orders
}

/// The CSV columns; the first six are required.
pub const CSV_COLUMNS: [&str; 9] = [
    "order_id",
    "member",
    "time",
    "sku",
    "qty",
    "unit_price",
    "category",
    "discount",
    "line",
];
const CSV_REQUIRED: usize = 6;

fn csv_rows(text: &str, problems: &mut Vec<String>) -> Vec<FileOrder> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            problems.push(format!("line 1: {e}"));
            return Vec::new();
        }
    };
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, name) in header.iter().enumerate() {
        match CSV_COLUMNS.iter().find(|c| **c == name) {
            None => problems.push(format!(
                "line 1, column {}: unknown column {name:?} (known: {})",
                i + 1,
                CSV_COLUMNS.join(", ")
            )),
            Some(c) => {
                if index.insert(c, i).is_some() {
                    problems.push(format!("line 1, column {}: {name:?} twice", i + 1));
                }
            }
        }
    }
    for required in &CSV_COLUMNS[..CSV_REQUIRED] {
        if !index.contains_key(required) {
            problems.push(format!("line 1: required column {required:?} is missing"));
        }
    }
    if !problems.is_empty() {
        return Vec::new();
    }
    let mut orders: Vec<FileOrder> = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        let field = |name: &str| {
            index
                .get(name)
                .and_then(|i| record.get(*i))
                .filter(|v| !v.is_empty())
        };
        let mut missing = false;
        for required in &CSV_COLUMNS[..CSV_REQUIRED] {
            if field(required).is_none() {
                problems.push(format!("line {line}, column {required}: required"));
                missing = true;
            }
        }
        if missing {
            continue;
        }
        let mut basket_line = serde_json::Map::new();
        for name in ["sku", "qty", "unit_price", "category", "discount"] {
            if let Some(v) = field(name) {
                basket_line.insert(name.into(), Value::String(v.into()));
            }
        }
        if let Some(v) = field("line") {
            match v.parse::<u32>() {
                Ok(n) => {
                    basket_line.insert("line".into(), Value::from(n));
                }
                Err(_) => {
                    problems.push(format!(
                        "line {line}, column line: {v:?} is not a line number"
                    ));
                    continue;
                }
            }
        }
        let (order_id, member, time) = (
            field("order_id").unwrap_or_default(),
            field("member").unwrap_or_default(),
            field("time").unwrap_or_default(),
        );
        match orders.last_mut() {
            Some(last) if last.order.order_id == order_id => {
                if last.order.member != member || last.order.time != time {
                    problems.push(format!(
                        "line {line}: order {order_id:?} has another member or time than on line {}",
                        last.line
                    ));
                }
                last.order.lines.push(Value::Object(basket_line));
            }
            _ => orders.push(FileOrder {
                line,
                order: OrderRequest {
                    order_id: order_id.into(),
                    member: member.into(),
                    time: time.into(),
                    lines: vec![Value::Object(basket_line)],
                    redeem: Vec::new(),
                },
            }),
        }
    }
    orders
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"order_id":"W-1","member":"M-1001","time":"2026-12-02T21:40:00+01:00","lines":[{"sku":"A","qty":"1","unit_price":"10"}]}
{"order_id":"W-2","member":"M-1002","time":"2026-12-02T22:05:00+01:00","lines":[{"sku":"B","qty":"2","unit_price":"4.50"}],"redeem":[{"program":"main","points":500}]}
"#;

    #[test]
    fn json_lines_give_one_order_per_line() {
        let orders = parse(GOOD, OrdersFormat::JsonLines).unwrap();
        assert_eq!(orders.len(), 2);
        assert_eq!(orders[1].line, 2);
        assert_eq!(orders[1].order.redeem[0].points, 500);
    }

    #[test]
    fn every_bad_line_is_named_and_nothing_is_returned() {
        let text = format!(
            "{GOOD}{}\n{}\n{}\n",
            r#"{"order_id":"W-3","member":"M-1","time":"2026-12-02T21:40:00+01:00","lines":[{"sku":"A","qty":"-1","unit_price":"10"}]}"#,
            r#"{"order_id":"W-1","member":"M-1","time":"2026-12-02T21:40:00+01:00","lines":[{"sku":"A","qty":"1","unit_price":"10"}]}"#,
            r#"{"order_id":"W-4","member":"M-1","time":"tomorrow","lines":[]}"#,
        );
        let e = parse(&text, OrdersFormat::JsonLines)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3: "), "{e}");
        assert!(e.contains("qty"), "{e}");
        assert!(
            e.contains("line 4: order_id \"W-1\" again (first on line 1)"),
            "{e}"
        );
        assert!(e.contains("line 5: time: "), "{e}");
        assert!(e.starts_with("3 problem(s), nothing was recorded"), "{e}");
        let broken = parse("{\"order_id\": 1}\n", OrdersFormat::JsonLines).unwrap_err();
        assert!(broken.to_string().contains("line 1, column "), "{broken}");
    }

    #[test]
    fn csv_rows_of_one_order_are_grouped_and_columns_named() {
        let text = "order_id,member,time,sku,category,qty,unit_price,discount\n\
                    W-1,M-1001,2026-12-02T21:40:00+01:00,A,shoes,1,59.99,5.00\n\
                    W-1,M-1001,2026-12-02T21:40:00+01:00,B,,2,7.49,\n\
                    W-2,M-1002,2026-12-02T22:00:00+01:00,C,,1,3.00,\n";
        let orders = parse(text, OrdersFormat::Csv).unwrap();
        assert_eq!(orders.len(), 2);
        assert_eq!(orders[0].order.lines.len(), 2);
        assert_eq!(orders[0].order.lines[0]["discount"], "5.00");
        assert_eq!(orders[1].line, 4);
        let bad = "order_id,member,time,sku,qty,unit_price,colour\n";
        let e = parse(bad, OrdersFormat::Csv).unwrap_err().to_string();
        assert!(
            e.contains("line 1, column 7: unknown column \"colour\""),
            "{e}"
        );
        let missing =
            "order_id,member,time,sku,qty,unit_price\nW-1,M-1,2026-12-02T21:40:00+01:00,A,,1\n";
        let e = parse(missing, OrdersFormat::Csv).unwrap_err().to_string();
        assert!(e.contains("line 2, column qty: required"), "{e}");
        let split = "order_id,member,time,sku,qty,unit_price\n\
                     W-1,M-1,2026-12-02T21:40:00+01:00,A,1,1\n\
                     W-1,M-2,2026-12-02T21:40:00+01:00,B,1,1\n";
        let e = parse(split, OrdersFormat::Csv).unwrap_err().to_string();
        assert!(
            e.contains("line 3: order \"W-1\" has another member"),
            "{e}"
        );
    }
}
