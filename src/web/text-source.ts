import type { SearchBody } from './api.js';
import type { QuerySource, SourceHost, SourcePanel } from './sources.js';

/**
 * A finding typed in words ("liver with a tumour larger than 5 cm"), searched in the index's text space
 * (a space learned from its captions, or its CLIP model's text tower). A text has no volume: the page
 * shows no slab picker for it, and each result card shows the slice that matched the text best.
 * Enter searches (Shift+Enter starts a new line).
 */
export class TextPanel implements SourcePanel {
  readonly kind = 'text';
  private readonly box: HTMLTextAreaElement;

  constructor(
    private readonly host: SourceHost,
    private readonly searchNow: () => void,
  ) {
    const box = document.getElementById('text-query');
    if (!(box instanceof HTMLTextAreaElement)) throw new Error('page element #text-query is missing');
    this.box = box;
    let last = '';
    // A changed text is a new query: stale results go, but only when the words change, not the caret.
    box.addEventListener('input', () => {
      const now = box.value.trim();
      if (now === last) return;
      last = now;
      host.setSource(this.activate());
    });
    box.addEventListener('keydown', (event) => {
      if (event.key !== 'Enter' || event.shiftKey || event.isComposing) return;
      event.preventDefault();
      if (this.activate()) this.searchNow();
    });
  }

  /** The method a volume query had before the text chose 3D-MIR's text method. */
  private volumeMethod: string | undefined;

  /** Switches the method menu to slice-count while the text is the source, and back after; true when changed. */
  chooseMethod(textChosen: boolean, method: HTMLSelectElement): boolean {
    if (textChosen && this.volumeMethod === undefined) {
      this.volumeMethod = method.value;
      method.value = 'slice-count';
      return true;
    }
    if (!textChosen && this.volumeMethod !== undefined) {
      method.value = this.volumeMethod;
      this.volumeMethod = undefined;
      return true;
    }
    return false;
  }

  activate(): QuerySource | undefined {
    const text = this.box.value.trim();
    if (!text) return undefined;
    const body: Partial<SearchBody> = { text };
    return { kind: 'text', body };
  }
}

/** The text to fuse with a volume query (More options), if one is typed. */
export function fusedText(): string | undefined {
  const field = document.getElementById('opt-text');
  const text = field instanceof HTMLInputElement ? field.value.trim() : '';
  return text || undefined;
}
