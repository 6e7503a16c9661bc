// A live status line on a terminal (stderr), redrawn in place; silent when not a terminal.
export class StatusLine {
  private shown = false;
  constructor(private readonly out: NodeJS.WritableStream & { isTTY?: boolean }) {}

  show(text: string): void {
    if (!this.out.isTTY) return;
    this.out.write(`\r\x1b[2K${text}`);
    this.shown = true;
  }

  clear(): void {
    if (!this.shown) return;
    this.out.write('\r\x1b[2K');
    this.shown = false;
  }
}
