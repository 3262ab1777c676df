import { render } from 'preact';

function Console() {
  return <main>Herald console</main>;
}

render(<Console />, document.getElementById('root')!);
