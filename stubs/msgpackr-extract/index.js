throw new Error('msgpackr-extract is stubbed out in Tessera: msgpackr uses its JavaScript decoder');
