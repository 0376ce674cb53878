//! What the server answers a statement with, read packet by packet: an OK
//! (affected rows, last insert id), an ERR (kept with its code and
//! SQLSTATE), or a result set — column definitions, then rows in the text
//! protocol (`COM_QUERY`) or the binary one (`COM_STMT_EXECUTE`), then the
//! terminating EOF. Packets are decoded by mysql_common; this file is the
//! state machine that says which packet comes next, and the row type
//! callers read values from.
//!
//! Further result sets the server announces (`SERVER_MORE_RESULTS_EXISTS`,
//! as a stored procedure's closing OK) are read to their end so the
//! connection stays in step; their rows are dropped, their affected-row
//! counts added.

use super::error::MysqlError;
use super::packet::PacketStream;
use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    Column, CommonOkPacket, ErrPacket, NullBitmap, OkPacket, OkPacketDeserializer, OldEofPacket,
};
use mysql_common::value::{BinValue, ServerSide, TextValue, ValueDeserializer};
use mysql_common::Value;
use std::borrow::Cow;

/// The result of one statement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    /// Column definitions of the (first) result set; empty for statements
    /// without one.
    pub columns: Vec<Column>,
    /// Its rows.
    pub rows: Vec<Row>,
    /// Rows changed — matched rows, under CLIENT_FOUND_ROWS.
    pub affected_rows: u64,
    /// The AUTO_INCREMENT value the statement generated (0 when none).
    pub last_insert_id: u64,
    /// Warnings the statement raised.
    pub warnings: u16,
}

impl QueryResult {
    /// The index of the column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name_ref() == name.as_bytes())
    }
}

/// One row: a value per column. Rows of the text protocol hold
/// [`Value::Bytes`] or [`Value::NULL`]; rows of the binary protocol hold
/// typed values (integers, doubles, dates, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Row(Vec<Value>);

impl Row {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the row has no values.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of column `i`.
    pub fn get(&self, i: usize) -> Option<&Value> {
        self.0.get(i)
    }

    /// Whether column `i` is NULL (or absent).
    pub fn is_null(&self, i: usize) -> bool {
        matches!(self.0.get(i), None | Some(Value::NULL))
    }

    /// Column `i` as bytes, for string and blob values (and every value of
    /// the text protocol).
    pub fn bytes(&self, i: usize) -> Option<&[u8]> {
        match self.0.get(i) {
            Some(Value::Bytes(b)) => Some(b),
            _ => None,
        }
    }

    /// Column `i` as UTF-8 text.
    pub fn str(&self, i: usize) -> Option<&str> {
        self.bytes(i).and_then(|b| std::str::from_utf8(b).ok())
    }

    /// Column `i` as a signed integer (from either protocol).
    pub fn i64(&self, i: usize) -> Option<i64> {
        match self.0.get(i)? {
            Value::Int(v) => Some(*v),
            Value::UInt(v) => i64::try_from(*v).ok(),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// Column `i` as an unsigned integer (from either protocol).
    pub fn u64(&self, i: usize) -> Option<u64> {
        match self.0.get(i)? {
            Value::UInt(v) => Some(*v),
            Value::Int(v) => u64::try_from(*v).ok(),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// Column `i` as a double (from either protocol; DECIMAL text too).
    pub fn f64(&self, i: usize) -> Option<f64> {
        match self.0.get(i)? {
            Value::Double(v) => Some(*v),
            Value::Float(v) => Some(f64::from(*v)),
            Value::Int(v) => Some(*v as f64),
            Value::UInt(v) => Some(*v as f64),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// The values.
    pub fn values(&self) -> &[Value] {
        &self.0
    }

    /// The values, owned.
    pub fn into_values(self) -> Vec<Value> {
        self.0
    }

    /// The row as the text protocol carries it: bytes or NULL per column
    /// (typed binary values rendered as MySQL prints them).
    pub fn into_text(self) -> Vec<Option<Vec<u8>>> {
        self.0
            .into_iter()
            .map(|v| match v {
                Value::NULL => None,
                Value::Bytes(b) => Some(b),
                Value::Int(n) => Some(n.to_string().into_bytes()),
                Value::UInt(n) => Some(n.to_string().into_bytes()),
                Value::Float(n) => Some(n.to_string().into_bytes()),
                Value::Double(n) => Some(n.to_string().into_bytes()),
                other => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
            })
            .collect()
    }
}

/// Which encoding a result set's rows use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `COM_QUERY`'s rows: a length-encoded string or NULL per column.
    Text,
    /// `COM_STMT_EXECUTE`'s rows: a NULL bitmap and typed values.
    Binary,
}

/// The server error in an ERR packet (a protocol error if it is not one).
pub fn server_error(packet: &[u8], caps: CapabilityFlags) -> MysqlError {
    match ParseBuf(packet).parse::<ErrPacket<'_>>(caps) {
        Ok(ErrPacket::Error(e)) => MysqlError::from(&e),
        Ok(ErrPacket::Progress(_)) => MysqlError::protocol("unasked progress report"),
        Err(e) => MysqlError::protocol(format!("bad ERR packet: {e}")),
    }
}

/// An OK packet.
pub fn parse_ok(packet: &[u8], caps: CapabilityFlags) -> Result<OkPacket<'_>, MysqlError> {
    ParseBuf(packet)
        .parse::<OkPacketDeserializer<'_, CommonOkPacket>>(caps)
        .map(OkPacketDeserializer::into_inner)
        .map_err(|e| MysqlError::protocol(format!("bad OK packet: {e}")))
}

/// An EOF packet (0xfe, under 9 bytes) ending column definitions or rows.
fn is_eof(packet: &[u8]) -> bool {
    packet.first() == Some(&0xfe) && packet.len() < 9
}

/// The status flags of an EOF packet.
fn parse_eof(packet: &[u8], caps: CapabilityFlags) -> Result<StatusFlags, MysqlError> {
    ParseBuf(packet)
        .parse::<OkPacketDeserializer<'_, OldEofPacket>>(caps)
        .map(|ok| ok.into_inner().status_flags())
        .map_err(|e| MysqlError::protocol(format!("bad EOF packet: {e}")))
}

/// Reads `n` column definitions and the EOF after them.
pub async fn read_columns(
    packets: &mut PacketStream,
    n: usize,
    caps: CapabilityFlags,
) -> Result<Vec<Column>, MysqlError> {
    let mut columns = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let packet = packets.read().await?;
        let column: Column = ParseBuf(packet)
            .parse(())
            .map_err(|e| MysqlError::protocol(format!("bad column definition: {e}")))?;
        columns.push(column);
    }
    if n > 0 {
        let packet = packets.read().await?;
        if !is_eof(packet) {
            return Err(MysqlError::protocol("column definitions not ended by EOF"));
        }
        parse_eof(packet, caps)?;
    }
    Ok(columns)
}

/// Reads the answer to a statement just sent: the result and the server
/// status it ended with. A server error is returned as an error, the
/// connection still in step.
pub async fn read_result(
    packets: &mut PacketStream,
    caps: CapabilityFlags,
    protocol: Protocol,
) -> Result<(QueryResult, StatusFlags), MysqlError> {
    let mut result = QueryResult::default();
    let mut first = true;
    loop {
        let packet = packets.read().await?;
        let status = match packet.first() {
            Some(0x00) => {
                let ok = parse_ok(packet, caps)?;
                result.affected_rows += ok.affected_rows();
                if first {
                    result.last_insert_id = ok.last_insert_id().unwrap_or(0);
                }
                result.warnings = result.warnings.saturating_add(ok.warnings());
                ok.status_flags()
            }
            Some(0xff) => return Err(server_error(packet, caps)),
            Some(0xfb) => return Err(MysqlError::protocol("unasked LOCAL INFILE request")),
            Some(_) => {
                let n = ParseBuf(packet)
                    .checked_eat_lenenc_int()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| MysqlError::protocol("bad column count"))?;
                let columns = read_columns(packets, n, caps).await?;
                let (rows, status) = read_rows(packets, &columns, caps, protocol).await?;
                if first {
                    result.columns = columns;
                    result.rows = rows;
                }
                status
            }
            None => return Err(MysqlError::protocol("empty packet")),
        };
        first = false;
        if !status.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS) {
            return Ok((result, status));
        }
    }
}

/// Reads rows up to the EOF that ends them.
async fn read_rows(
    packets: &mut PacketStream,
    columns: &[Column],
    caps: CapabilityFlags,
    protocol: Protocol,
) -> Result<(Vec<Row>, StatusFlags), MysqlError> {
    let mut rows = Vec::new();
    loop {
        let packet = packets.read().await?;
        if is_eof(packet) {
            return Ok((rows, parse_eof(packet, caps)?));
        }
        if packet.first() == Some(&0xff) {
            // The statement failed part-way (killed, interrupted); the ERR
            // ends the result.
            return Err(server_error(packet, caps));
        }
        let row = match protocol {
            Protocol::Text => text_row(packet, columns.len()),
            Protocol::Binary => binary_row(packet, columns),
        }
        .map_err(|e| MysqlError::protocol(format!("bad row: {e}")))?;
        rows.push(row);
    }
}

fn text_row(packet: &[u8], n: usize) -> std::io::Result<Row> {
    let mut buf = ParseBuf(packet);
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        values.push(buf.parse::<ValueDeserializer<TextValue>>(())?.0);
    }
    Ok(Row(values))
}

fn binary_row(packet: &[u8], columns: &[Column]) -> std::io::Result<Row> {
    let mut buf = ParseBuf(packet);
    if buf.checked_eat_u8() != Some(0x00) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "binary row without its 0x00 header",
        ));
    }
    let bitmap = buf.parse::<NullBitmap<ServerSide, Cow<'_, [u8]>>>(columns.len())?;
    let mut values = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        if bitmap.is_null(i) {
            values.push(Value::NULL);
        } else {
            values.push(
                buf.parse::<ValueDeserializer<BinValue>>((column.column_type(), column.flags()))?
                    .0,
            );
        }
    }
    Ok(Row(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_accessors_read_both_protocols() {
        let row = Row(vec![
            Value::Bytes(b"42".to_vec()),
            Value::Int(-7),
            Value::Double(2.5),
            Value::NULL,
            Value::Bytes(b"h\xc3\xa9".to_vec()),
            Value::UInt(u64::MAX),
        ]);
        assert_eq!(row.i64(0), Some(42));
        assert_eq!(row.i64(1), Some(-7));
        assert_eq!(row.u64(1), None);
        assert_eq!(row.f64(2), Some(2.5));
        assert!(row.is_null(3) && row.is_null(99));
        assert_eq!(row.str(4), Some("hé"));
        assert_eq!(row.i64(5), None);
        assert_eq!(row.u64(5), Some(u64::MAX));
        assert_eq!(
            row.into_text(),
            vec![
                Some(b"42".to_vec()),
                Some(b"-7".to_vec()),
                Some(b"2.5".to_vec()),
                None,
                Some("hé".as_bytes().to_vec()),
                Some(u64::MAX.to_string().into_bytes()),
            ]
        );
    }

    #[test]
    fn malformed_rows_are_errors_not_panics() {
        assert!(text_row(&[0x05, b'a'], 1).is_err());
        assert!(text_row(&[], 1).is_err());
        let col = Column::new(mysql_common::constants::ColumnType::MYSQL_TYPE_LONGLONG);
        assert!(binary_row(&[0x00, 0x00, 0x01], std::slice::from_ref(&col)).is_err());
        assert!(binary_row(&[0x01], std::slice::from_ref(&col)).is_err());
    }
}
