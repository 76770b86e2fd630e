"""A receipt as a person reads it: a printable HTML page, and a PDF (pure: values in, text or
bytes out; no I/O).

Both show the same facts (``receipt_facts``): who issued it (config ``receipt_issuer``, when
set), its number and date, the account, who it is made out to (the billing details as they were
at the top-up), the amount, and the payment reference (the top-up's ``order_id``).

The HTML page stands alone (inline CSS, no scripts, no outside resources) and escapes every
value it shows. The PDF is drawn with fpdf2's built-in Helvetica, which has the Windows-1252
characters only: anything else is written as its closest plain letters (``ő`` as ``o``) or
``?``; the JSON and the HTML page keep every character.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from gateway.billing.receipts import CURRENCY, Issuer, Receipt
from pricing import format_usd

TITLE = "Receipt"
DESCRIPTION = "Prepaid balance top-up"
FOOTNOTE = ("This receipt confirms a payment received. The amount was added to the account's "
            "prepaid balance.")  # fmt: skip
PDF_ENCODING = "windows-1252"  # what fpdf2's core fonts can write
# Latin letters that Unicode does not decompose into a plain letter and a mark.
PLAIN_LETTERS = str.maketrans("ŁłĐđĦħıŦŧ", "LlDdHhiTt")


@dataclass(frozen=True, slots=True)
class ReceiptFacts:
    """What a rendering shows, as text: labelled lines, addresses split into lines."""

    title: str
    issuer: tuple[str, ...]  # name, address lines, tax id; () when no issuer is configured
    header: tuple[tuple[str, str], ...]  # number, date, account
    billed_to: tuple[str, ...]  # () when the account had no billing details
    description: str
    amount: str
    references: tuple[tuple[str, str], ...]  # payment reference, transaction


def receipt_facts(receipt: Receipt, issuer: Issuer | None) -> ReceiptFacts:
    issued = datetime.fromtimestamp(receipt.ts_ms / 1000, UTC)
    issuer_lines: tuple[str, ...] = ()
    if issuer is not None:
        issuer_lines = (issuer.name, *_lines(issuer.address),
                        *((f"Tax ID: {issuer.tax_id}",) if issuer.tax_id else ()))  # fmt: skip
    b = receipt.billing
    billed_to = (*_lines(b.name), *_lines(b.address),
                 *((f"Tax ID: {b.tax_id}",) if b.tax_id else ()), *_lines(b.email))  # fmt: skip
    return ReceiptFacts(
        title=f"{TITLE} {receipt.number}",
        issuer=issuer_lines,
        header=(
            ("Receipt number", str(receipt.number)),
            ("Date", issued.strftime("%Y-%m-%d %H:%M UTC")),
            ("Account", receipt.account),
        ),
        billed_to=billed_to,
        description=DESCRIPTION + (f": {receipt.note}" if receipt.note else ""),
        amount=f"{format_usd(receipt.amount)} {CURRENCY}",
        references=(
            ("Payment reference", receipt.order_id),
            ("Transaction", receipt.transaction_id),
        ),
    )


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


# -- HTML ------------------------------------------------------------------------------------

STYLE = """
body { margin: 0; background: #f3f4f6; color: #111827;
       font: 14px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 720px; margin: 32px auto; padding: 48px; background: #fff;
       box-shadow: 0 1px 3px rgba(0, 0, 0, .12); }
header { display: flex; justify-content: space-between; gap: 32px; margin-bottom: 32px; }
h1 { margin: 0 0 12px; font-size: 28px; letter-spacing: .02em; }
h2 { margin: 0 0 6px; font-size: 12px; text-transform: uppercase; color: #6b7280; }
.issuer strong { font-size: 16px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dt { color: #6b7280; } dd { margin: 0; word-break: break-all; }
table { width: 100%; border-collapse: collapse; margin: 32px 0; }
th, td { padding: 10px 0; text-align: left; vertical-align: top;
         border-bottom: 1px solid #e5e7eb; }
th { font-size: 12px; text-transform: uppercase; color: #6b7280; }
.amount { text-align: right; white-space: nowrap; }
tr.total td { font-weight: 700; border-top: 2px solid #111827; border-bottom: none; }
.note { margin-top: 32px; color: #6b7280; font-size: 12px; }
@page { size: A4; margin: 18mm; }
@media print { body { background: #fff; } main { margin: 0; padding: 0; box-shadow: none; } }
"""


def receipt_html(receipt: Receipt, issuer: Issuer | None) -> str:
    """A standalone, printable HTML page of the receipt; every value escaped."""
    facts = receipt_facts(receipt, issuer)
    e = escape
    issuer_block = ""
    if facts.issuer:
        name, *rest = facts.issuer
        issuer_block = (f'<div class="issuer"><strong>{e(name)}</strong>'
                        + "".join(f"<div>{e(line)}</div>" for line in rest) + "</div>")  # fmt: skip
    header = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts.header)
    billed = "".join(f"<div>{e(line)}</div>" for line in facts.billed_to) or "<div>&mdash;</div>"
    refs = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts.references)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(facts.title)}</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<header>
{issuer_block}
<div class="receipt"><h1>{e(TITLE)}</h1><dl>{header}</dl></div>
</header>
<section class="billed-to"><h2>Billed to</h2>{billed}</section>
<table>
<thead><tr><th>Description</th><th class="amount">Amount</th></tr></thead>
<tbody>
<tr><td>{e(facts.description)}</td><td class="amount">{e(facts.amount)}</td></tr>
<tr class="total"><td>Total paid</td><td class="amount">{e(facts.amount)}</td></tr>
</tbody>
</table>
<dl>{refs}</dl>
<p class="note">{e(FOOTNOTE)}</p>
</main>
</body>
</html>
"""


# -- PDF -------------------------------------------------------------------------------------


def pdf_text(text: str) -> str:
    """``text`` in what the PDF's font can write: each other character as its plain letters
    (Unicode decomposition without the accents), else ``?``."""
    out = []
    for char in text.translate(PLAIN_LETTERS):
        try:
            char.encode(PDF_ENCODING)
            out.append(char)
        except UnicodeEncodeError:
            plain = unicodedata.normalize("NFKD", char).encode(PDF_ENCODING, "ignore")
            out.append(plain.decode(PDF_ENCODING) if plain else "?")
    return "".join(out)


def receipt_pdf(receipt: Receipt, issuer: Issuer | None) -> bytes:
    """The receipt as a one-page A4 PDF; the same bytes for the same receipt."""
    # Imported here: the PDF library (and the imaging library it loads) costs memory and start-up
    # time in every gateway process, and only a PDF receipt needs it.
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    facts = receipt_facts(receipt, issuer)
    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = PDF_ENCODING
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.set_title(pdf_text(facts.title))
    pdf.set_author(pdf_text(facts.issuer[0] if facts.issuer else "Tollgate"))
    pdf.set_creation_date(datetime.fromtimestamp(receipt.ts_ms / 1000, UTC))
    pdf.set_lang("en")
    pdf.add_page()
    width = pdf.epw

    def line(text: str, size: float = 10, style: str = "", height: float = 5.5) -> None:
        pdf.set_font("Helvetica", style, size)
        pdf.multi_cell(width, height, pdf_text(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def pair(label: str, value: str) -> None:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(45, 6, pdf_text(label))
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(width - 45, 6, pdf_text(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    line(TITLE, size=22, style="B", height=11)
    for i, text in enumerate(facts.issuer):
        line(text, style="B" if i == 0 else "")
    pdf.ln(5)
    for label, value in facts.header:
        pair(label, value)
    pdf.ln(5)
    line("Billed to", size=9, style="B")
    for text in facts.billed_to or ("-",):
        line(text)
    pdf.ln(6)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(width - 50, 8, "Description", border="B")
    pdf.cell(50, 8, "Amount", border="B", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 10)
    top = pdf.get_y()
    pdf.multi_cell(width - 55, 8, pdf_text(facts.description), align="L", new_x=XPos.LMARGIN,
                   new_y=YPos.NEXT, max_line_height=6)  # fmt: skip
    below = pdf.get_y()
    pdf.set_xy(pdf.l_margin + width - 50, top)
    pdf.cell(50, 8, pdf_text(facts.amount), align="R")
    pdf.set_xy(pdf.l_margin, below)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(width - 50, 9, "Total paid", border="T")
    pdf.cell(50, 9, pdf_text(facts.amount), border="T", align="R",
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)  # fmt: skip
    pdf.ln(6)
    for label, value in facts.references:
        pair(label, value)
    pdf.ln(8)
    line(FOOTNOTE, size=8)
    return bytes(pdf.output())
