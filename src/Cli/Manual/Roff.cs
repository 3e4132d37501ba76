using System.Text;

namespace ZonLb.Cli.Manual;

/// <summary>Writes man(7) roff: escapes text so that no line starts a request by accident and every hyphen,
/// backslash and quote prints as written.</summary>
internal sealed class Roff
{
    private readonly StringBuilder _sb = new();

    /// <summary>Text escaped for roff: backslashes doubled, hyphens as \-, a leading dot or quote protected.</summary>
    public static string Escape(string text)
    {
        var s = text.Replace("\\", "\\e").Replace("-", "\\-");
        return s.Length > 0 && (s[0] == '.' || s[0] == '\'') ? "\\&" + s : s;
    }

    public Roff Title(string name, int section, string source, string manual)
    {
        _sb.Append($".TH \"{name.ToUpperInvariant()}\" \"{section}\" \"\" \"{Escape(source)}\" \"{Escape(manual)}\"\n");
        return this;
    }

    public Roff Section(string title)
    {
        _sb.Append($".SH \"{Escape(title.ToUpperInvariant())}\"\n");
        return this;
    }

    public Roff Subsection(string title)
    {
        _sb.Append($".SS \"{Escape(title).Replace("\"", "\\(dq")}\"\n");
        return this;
    }

    /// <summary>A paragraph; newlines in <paramref name="text"/> become line breaks.</summary>
    public Roff Paragraph(string text)
    {
        _sb.Append(".PP\n");
        return Lines(text);
    }

    /// <summary>A tagged paragraph: <paramref name="tag"/> in bold, <paramref name="text"/> indented below it.</summary>
    public Roff Item(string tag, string text)
    {
        _sb.Append(".TP\n").Append("\\fB").Append(Escape(tag)).Append("\\fR\n");
        return Lines(text);
    }

    /// <summary>Text whose newlines become line breaks.</summary>
    private Roff Lines(string text)
    {
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            _sb.Append(Escape(lines[i].TrimEnd())).Append('\n');
            if (i < lines.Length - 1)
                _sb.Append(".br\n");
        }
        return this;
    }

    /// <summary>Lines shown as they are (no filling), for examples.</summary>
    public Roff Example(string text)
    {
        _sb.Append(".PP\n.nf\n.RS 4\n");
        foreach (var line in text.Split('\n'))
            _sb.Append(Escape(line)).Append('\n');
        _sb.Append(".RE\n.fi\n");
        return this;
    }

    public override string ToString() => _sb.ToString();
}
